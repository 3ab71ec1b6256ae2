"""OTLP/HTTP ``POST /v1/traces`` (OTLP specification, "OTLP/HTTP").

- Bodies: ``application/x-protobuf`` or ``application/json`` (OTLP/JSON: hex ids, enum
  integers, lowerCamelCase or snake_case field names), optionally
  ``Content-Encoding: gzip``. Anything else: 415.
- Success: 200 with an ``ExportTraceServiceResponse`` in the request's encoding; when some
  spans were invalid, ``partial_success`` carries ``rejected_spans`` and a message.
- Malformed body, or no valid span: 400 with a ``google.rpc.Status`` (code, message).
- Body over the limit (compressed or decompressed): 413.
- Ingestion queue full: 429 with ``Retry-After``; store unavailable or shutting down: 503
  with ``Retry-After``. Both are retryable per the specification.

The response is sent only after the spans are committed to the store.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from typing import Any

import anyio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from flightlog.errors import InputError
from flightlog.otel.decode import decode
from flightlog.privacy import scrub
from flightlog.server.ingest import (
    Ingestor,
    Overloaded,
    Unavailable,
    conflict_message,
    rejected_spans_of,
)

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


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


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


DECODE_CONCURRENCY = 4


def make_endpoint(ingestor: Ingestor, max_body: int = DEFAULT_MAX_BODY) -> Any:
    # Bodies are read and decoded by at most DECODE_CONCURRENCY requests at a time, so memory
    # stays bounded however many clients connect (the rest wait their turn).
    decoding = asyncio.Semaphore(DECODE_CONCURRENCY)

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
        try:
            async with decoding:
                body = await _read_body(request, max_body)

                def work(raw: bytes) -> Any:
                    data = _gunzip(raw, max_body) if encoding == "gzip" else raw
                    result = decode(data, ctype, infer_edges=False)
                    scrub(result.batch, ingestor.privacy)  # secrets out before anything else
                    return result

                started = time.perf_counter()
                result = await anyio.to_thread.run_sync(work, body)
                ingestor.stats.decode_seconds += time.perf_counter() - started
                del body
        except TooLarge as exc:
            return error_response(413, RESOURCE_EXHAUSTED, str(exc), ctype)
        except InputError as exc:
            return error_response(400, INVALID_ARGUMENT, str(exc), ctype)
        except ClientDisconnect:
            return Response(status_code=400)
        if result.rejected_spans and not result.accepted_spans:
            return error_response(
                400,
                INVALID_ARGUMENT,
                f"all {result.rejected_spans} span(s) rejected: {result.error_message()}",
                ctype,
            )
        rejected, message = result.rejected_spans, result.error_message()
        if result.accepted_spans:
            try:
                future = ingestor.submit(result)
                conflicts = await asyncio.wrap_future(future)
            except Overloaded as exc:
                return error_response(
                    429,
                    RESOURCE_EXHAUSTED,
                    "ingestion queue is full; retry after the indicated delay",
                    ctype,
                    headers={"Retry-After": str(exc.retry_after)},
                )
            except Unavailable as exc:
                return error_response(
                    503, UNAVAILABLE, str(exc), ctype, headers={"Retry-After": "5"}
                )
            if conflicts:
                # Rewrites of stored facts: not written, and not retryable (OTLP partial
                # success: the client must not resend them).
                rejected += rejected_spans_of(conflicts)
                message = "; ".join(m for m in (message, conflict_message(conflicts)) if m)
        return _success(rejected, message, ctype)

    return traces


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
