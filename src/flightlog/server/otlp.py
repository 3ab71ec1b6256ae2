"""OTLP/HTTP ``POST /v1/traces`` (OTLP specification, "OTLP/HTTP").

- Bodies: ``application/x-protobuf`` or ``application/json`` (OTLP/JSON: hex ids, enum
  integers, lowerCamelCase or snake_case field names), optionally
  ``Content-Encoding: gzip``. Anything else: 415.
- Success: 200 with an ``ExportTraceServiceResponse`` in the request's encoding; when some
  spans were invalid, ``partial_success`` carries ``rejected_spans`` and a message.
- Malformed body, or no valid span: 400 with a ``google.rpc.Status`` (code, message).
- Body over the limit (compressed or decompressed): 413. Body not arriving in time: 408.
- Ingestion queue full, or the server holding too many body bytes: 429 with ``Retry-After``,
  before decoding; store unavailable or shutting down: 503 with ``Retry-After``. Both are
  retryable per the specification.
- A span that cannot be decoded or stored (timestamps beyond 2^63-1, values out of range,
  nesting the encoder refuses) is rejected on its own through ``partial_success``.
- With API keys (``flightlog.server.guard``): 401 / 403 before the body is read; the key's
  project stamps the runs, and spans of another project's runs are rejected.

The response is sent only after the spans are committed to the store. A request holds a
decode slot (``flightlog.server.admission``) only while it decodes: it gives it back before
it waits for the writer's commit, so a slow commit (a long fsync, the store's write lock
held elsewhere) does not stop other requests' decoding. While it waits it still holds its
bytes (decompressed size) in the bytes-held budget, which bounds the memory of the parsed
requests waiting; beyond it, new bodies get 429.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from typing import TYPE_CHECKING, Any

import anyio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

if TYPE_CHECKING:
    from flightlog.store.base import StoreReader

from flightlog.errors import InputError
from flightlog.otel.decode import MAX_ERRORS_REPORTED, DecodeResult, parse_request
from flightlog.privacy import scrub
from flightlog.server.admission import Admission, DecodeSlot, Shed, release_memory
from flightlog.server.guard import principal
from flightlog.server.ingest import (
    Ingestor,
    Overloaded,
    Unavailable,
    conflict_message,
    rejected_spans_of,
)
from flightlog.server.screen import claim_runs, decode_parsed, screen_times, split

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
DEFAULT_MAX_BODY = 32 << 20  # bytes, after decompression too

# google.rpc.Code values
INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE = 3, 8, 14


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def status_protobuf(code: int, message: str) -> bytes:
    """A serialized ``google.rpc.Status`` (field 1 code, field 2 message)."""
    msg = message.encode("utf-8", errors="replace")
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(msg)) + msg


class TooLarge(Exception):
    pass


def error_response(
    status: int, code: int, message: str, ctype: str, headers: dict[str, str] | None = None
) -> Response:
    if ctype == PROTOBUF:
        return Response(
            status_protobuf(code, message), status_code=status, media_type=PROTOBUF, headers=headers
        )
    import orjson

    return Response(
        orjson.dumps({"code": code, "message": message}),
        status_code=status,
        media_type=JSON,
        headers=headers,
    )


class BodyTimeout(Exception):
    pass


async def _read_body(request: Request, admission: Admission) -> tuple[bytes, int]:
    """The whole body and the bytes it holds in ``admission`` (released by the caller).

    Raises ``TooLarge`` beyond ``max_body``, ``BodyTimeout`` when no byte arrives for
    ``idle_timeout`` seconds or the body takes longer than ``body_timeout``, ``Shed`` when
    the server holds too many body bytes already."""
    limit = admission.max_body
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    deadline = time.monotonic() + admission.body_timeout
    stream = request.stream().__aiter__()
    try:
        while True:
            wait = min(admission.idle_timeout, deadline - time.monotonic())
            try:
                with anyio.fail_after(max(wait, 0.0)):
                    chunk = await stream.__anext__()
            except StopAsyncIteration:
                break
            except TimeoutError:
                admission.stats.timeouts += 1
                raise BodyTimeout(
                    f"the request body did not arrive in time ({size} bytes received; no byte "
                    f"for {admission.idle_timeout:g} s, or more than "
                    f"{admission.body_timeout:g} s in all)"
                ) from None
            if not chunk:
                continue
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"request body exceeds the limit of {limit} bytes")
            admission.hold(len(chunk))
            chunks.append(chunk)
    except BaseException:
        admission.release(sum(len(c) for c in chunks))
        raise
    held = sum(len(c) for c in chunks)
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    return body, held


def _gunzip(body: bytes, limit: int) -> bytes:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InputError(f"body is not valid gzip ({exc})") from exc
    if len(out) > limit or d.unconsumed_tail:
        raise TooLarge(f"decompressed body exceeds the limit of {limit} bytes")
    if not d.eof:
        raise InputError("gzip body is truncated")
    return out


# Requests with more spans than this are decoded and stored in pieces of about this many
# spans (a trace's spans kept together), so memory follows the piece, not the request.
SPANS_PER_PIECE = 2_000
GZIP_RATIO = 8  # decode budget weight of a gzip body: its size times this, up to max_body


def make_endpoint(
    ingestor: Ingestor,
    max_body: int = DEFAULT_MAX_BODY,
    reader: StoreReader | None = None,
    admission: Admission | None = None,
) -> Any:
    """The ``POST /v1/traces`` handler. Order of work: cheap checks (content type, encoding,
    queue full: 429 before reading), the body (timeouts, bytes held), then a decode slot
    (weighed in bytes), decoding with bad spans rejected one by one, the slot given back,
    then the store (a request of many pieces takes the slot again for each piece)."""
    adm = admission or Admission.for_body_limit(max_body)

    async def traces(request: Request) -> Response:
        raw_ctype = request.headers.get("content-type", "")
        ctype = raw_ctype.split(";")[0].strip().lower()
        if ctype not in (PROTOBUF, JSON):
            return error_response(
                415,
                INVALID_ARGUMENT,
                f"unsupported content type {raw_ctype!r}; send application/x-protobuf or "
                "application/json (OTLP/HTTP)",
                JSON,
            )
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip", ""):
            return error_response(
                415,
                INVALID_ARGUMENT,
                f"unsupported content encoding {encoding!r}; send gzip or none",
                ctype,
            )
        if ingestor.pending_spans >= ingestor.max_pending_spans:
            ingestor.stats.overloaded += 1
            return _shed(ctype, "ingestion queue is full; retry after the indicated delay")
        held = size = 0
        slot = adm.slot()
        try:
            body, held = await _read_body(request, adm)
            size = len(body)
            weight = min(max_body, len(body) * GZIP_RATIO) if encoding == "gzip" else len(body)
            await slot.take(weight)

            def prepare(raw: bytes) -> tuple[list[Any], list[str], int]:
                data = _gunzip(raw, max_body) if encoding == "gzip" else raw
                decoded = len(data)
                req = parse_request(data, ctype)
                del data
                problems = screen_times(req)
                return split(req, SPANS_PER_PIECE), problems, decoded

            started = time.perf_counter()
            pieces, problems, decoded = await anyio.to_thread.run_sync(prepare, body)
            del body
            if decoded > held:
                # The parsed request waits for the commit within the bytes-held budget, at
                # its decompressed size (the decode slot is given back before that wait).
                adm.grow(decoded - held)
                held = decoded
            ingestor.stats.decode_seconds += time.perf_counter() - started
            return await _store(request, pieces, problems, ctype, slot, weight)
        except TooLarge as exc:
            return error_response(413, RESOURCE_EXHAUSTED, str(exc), ctype)
        except BodyTimeout as exc:
            return error_response(408, INVALID_ARGUMENT, str(exc), ctype)
        except Shed as exc:
            return _shed(ctype, str(exc), exc.retry_after)
        except InputError as exc:
            return error_response(400, INVALID_ARGUMENT, str(exc), ctype)
        except ClientDisconnect:
            return Response(status_code=400)
        finally:
            await slot.give()
            if held:
                adm.release(held)
            if size >= 4 << 20:
                await anyio.to_thread.run_sync(release_memory, size)

    async def _store(
        request: Request,
        pieces: list[Any],
        problems: list[str],
        ctype: str,
        slot: DecodeSlot,
        weight: int,
    ) -> Response:
        """Decode each piece holding ``slot`` (still held from parsing for the first), then
        give it back and wait for the writer's commit of that piece."""
        key = principal(request.scope)
        accepted = rejected = 0
        errors: list[str] = list(problems[:MAX_ERRORS_REPORTED])
        rejected += len(problems)
        piece_weight = weight // max(1, len(pieces))
        while pieces:
            piece = pieces.pop(0)
            await slot.take(piece_weight)
            started = time.perf_counter()

            def decode_piece(piece: Any) -> DecodeResult:
                result = decode_parsed(piece)
                scrub(result.batch, ingestor.privacy)  # secrets out before anything else
                return result

            result = await anyio.to_thread.run_sync(decode_piece, piece)
            del piece
            ingestor.stats.decode_seconds += time.perf_counter() - started
            await slot.give()  # decoded: the rest (and waiting for the writer) holds no budget
            if key is not None:  # the ingest key's project stamps the runs it sends
                await anyio.to_thread.run_sync(
                    claim_runs, reader or ingestor.store, result, key.project
                )
            accepted += result.accepted_spans
            rejected += result.rejected_spans
            errors += result.errors[: max(0, MAX_ERRORS_REPORTED - len(errors))]
            if not result.accepted_spans:
                continue
            try:
                conflicts = await asyncio.wrap_future(ingestor.submit(result))
            except Overloaded as exc:
                return _shed(
                    ctype,
                    "ingestion queue is full; retry after the indicated delay",
                    exc.retry_after,
                )
            except Unavailable as exc:
                return error_response(
                    503, UNAVAILABLE, str(exc), ctype, headers={"Retry-After": "5"}
                )
            finally:
                del result
            if conflicts:
                # Rewrites of stored facts: not written, and not retryable (OTLP partial
                # success: the client must not resend them).
                rejected += rejected_spans_of(conflicts)
                errors.append(conflict_message(conflicts))
        more = rejected - len(errors)
        message = "; ".join(errors) + (f"; and {more} more" if more > 0 else "")
        if rejected and not accepted:
            return error_response(
                400, INVALID_ARGUMENT, f"all {rejected} span(s) rejected: {message}", ctype
            )
        return _success(rejected, message, ctype)

    return traces


def _shed(ctype: str, message: str, retry_after: int = 1) -> Response:
    return error_response(
        429, RESOURCE_EXHAUSTED, message, ctype, headers={"Retry-After": str(retry_after)}
    )


def _success(rejected: int, message: str, ctype: str) -> Response:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceResponse,
    )

    resp = ExportTraceServiceResponse()
    if rejected:
        resp.partial_success.rejected_spans = rejected
        resp.partial_success.error_message = message
    if ctype == PROTOBUF:
        return Response(resp.SerializeToString(), media_type=PROTOBUF)
    import orjson

    doc: dict[str, Any] = {}
    if rejected:
        doc["partialSuccess"] = {"rejectedSpans": str(rejected), "errorMessage": message}
    return Response(orjson.dumps(doc), media_type=JSON)
