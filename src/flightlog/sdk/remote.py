"""The remote sink: records go to a Flightlog server (or an OpenTelemetry Collector) as
OTLP/HTTP protobuf, and never get lost on the way.

``write(batch)`` returns once the batch is durable: acknowledged by the server (which
acknowledges only after its own commit), or written and fsynced to the local spool
directory. While the server is down, slow (timeout) or answering 429/503, batches go to the
spool; a background thread replays the spool oldest first, with exponential backoff and full
jitter (honouring ``Retry-After``). Files left in the spool by an earlier process (a crash, or
an exit while the server was down) are replayed when the next process configures the same
server URL. Redelivery is safe: the server stores each (trace id, span id) once.

The spool is bounded (``spool_limit_bytes``, default 256 MiB, ``$FLIGHTLOG_SPOOL_LIMIT_MB``).
A batch that does not fit is dropped, counted in ``stats()`` (``spool_dropped_batches``,
``spool_dropped_records``, shown by ``flightlog.stats()["sink"]``) and logged. A batch the
server rejects as malformed (4xx other than 408/429) is moved to ``<spool>/rejected/`` and
counted, never retried forever.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from flightlog._retry import backoff_s, parse_retry_after
from flightlog.errors import ConfigurationError
from flightlog.model import Batch

log = logging.getLogger("flightlog")

DEFAULT_SPOOL_LIMIT = 256 << 20
RETRYABLE = {408, 429, 500, 502, 503, 504}
BACKOFF_BASE = 0.2
BACKOFF_MAX = 30.0


def default_spool_dir(url: str) -> Path:
    """``$FLIGHTLOG_SPOOL_DIR`` if set, else ``<user cache dir>/flightlog/spool/<server>``."""
    env = os.environ.get("FLIGHTLOG_SPOOL_DIR")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", url.split("://", 1)[-1]).strip("_")[:60]
    digest = hashlib.sha256(url.encode()).hexdigest()[:8]
    return Path(cache) / "flightlog" / "spool" / f"{name}-{digest}"


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Rejected(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Spool:
    """A directory of OTLP request bodies, one file each, named in arrival order."""

    def __init__(self, directory: Path, limit_bytes: int) -> None:
        self.dir = directory
        self.limit = limit_bytes
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create the spool directory {self.dir}: {exc}; set $FLIGHTLOG_SPOOL_DIR "
                "or configure(spool_dir=...) to a writable directory"
            ) from exc
        if not os.access(self.dir, os.W_OK):
            raise ConfigurationError(f"the spool directory {self.dir} is not writable")
        self._lock = threading.Lock()
        self._seq = itertools.count()
        for tmp in self.dir.glob("*.tmp"):  # half-written by a process that died
            with contextlib.suppress(OSError):
                tmp.unlink()

    def files(self) -> list[Path]:
        return sorted(self.dir.glob("*.otlp"))

    def size(self) -> int:
        total = 0
        for p in self.files():
            with contextlib.suppress(OSError):
                total += p.stat().st_size
        return total

    def add(self, body: bytes, records: int) -> bool:
        """Write ``body`` durably; False (nothing written) when it would exceed the limit."""
        with self._lock:
            if self.size() + len(body) > self.limit:
                return False
            name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._seq):08d}-{records}"
            tmp = self.dir / (name + ".tmp")
            final = self.dir / (name + ".otlp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, body)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
            dfd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
            return True

    @staticmethod
    def records_of(path: Path) -> int:
        try:
            return int(path.stem.rsplit("-", 1)[1])
        except (IndexError, ValueError):
            return 0

    def reject(self, path: Path) -> None:
        dest = self.dir / "rejected"
        dest.mkdir(exist_ok=True)
        with contextlib.suppress(OSError):
            os.replace(path, dest / path.name)


class RemoteSink:
    """A ``Sink`` that sends batches to ``url`` (``http(s)://host:port``) over OTLP/HTTP."""

    def __init__(
        self,
        url: str,
        *,
        spool_dir: str | os.PathLike[str] | None = None,
        spool_limit_bytes: int | None = None,
        timeout: float = 10.0,
        service: str | None = None,
        close_timeout: float = 5.0,
        api_key: str | None = None,
    ) -> None:
        import httpx

        from flightlog.otel.encode import encode_bytes

        self._encode = encode_bytes
        base = url.rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise ConfigurationError(f"not an http(s) URL: {url!r}; expected http://host:4318")
        self.url = base
        self.endpoint = base if base.endswith("/v1/traces") else base + "/v1/traces"
        self.service = service
        self.close_timeout = close_timeout
        if spool_limit_bytes is None:
            mb = os.environ.get("FLIGHTLOG_SPOOL_LIMIT_MB")
            spool_limit_bytes = int(mb) << 20 if mb and mb.isdigit() else DEFAULT_SPOOL_LIMIT
        self.spool = Spool(
            Path(spool_dir) if spool_dir else default_spool_dir(base), spool_limit_bytes
        )
        headers = {"Content-Type": "application/x-protobuf"}
        api_key = api_key or os.environ.get("FLIGHTLOG_API_KEY") or None
        self.api_key = api_key.strip() if api_key else None  # flightlog.why() reads with it
        if self.api_key:  # flightlog keys create NAME --scope ingest
            headers["Authorization"] = f"Bearer {self.api_key}"
        self._client = httpx.Client(timeout=timeout, headers=headers)
        self._httpx = httpx
        self._cond = threading.Condition()
        self._closing = False
        self.sent_batches = 0
        self.sent_records = 0
        self.spooled_batches = 0
        self.replayed_batches = 0
        self.spool_dropped_batches = 0
        self.spool_dropped_records = 0
        self.rejected_batches = 0
        self.rejected_spans = 0
        self.retries = 0
        self.last_error: str | None = None
        # Until when (monotonic) the server is taken to be away: while it is, new batches go
        # straight to the spool instead of each waiting for a connection to fail.
        self._away_until = 0.0
        self._start_replayer()
        with contextlib.suppress(AttributeError):
            os.register_at_fork(after_in_child=self._after_fork)

    # -- the Sink interface -------------------------------------------------------------
    def write(self, batch: Batch) -> None:
        """Deliver ``batch`` or spool it durably. Never blocks longer than one request."""
        if not len(batch):
            return
        body = self._encode(batch, service=self.service or _service_of(batch))
        records = len(batch)
        backlog = bool(self.spool.files())
        if backlog and time.monotonic() < self._away_until:
            self._to_spool(body, records)  # the server is away: the replayer delivers later
            return
        # Try the server even with a backlog (ingestion takes spans in any order): a process
        # that starts after an outage sends its own records rather than queueing them behind
        # the backlog it would exit before delivering.
        try:
            self._post(body)
        except _Retryable as exc:
            self.last_error = str(exc)
            self._away_until = time.monotonic() + BACKOFF_BASE
            self._to_spool(body, records)
            return
        except _Rejected as exc:
            if exc.status == 413 and len(batch) > 1:
                for half in _halves(batch):
                    self.write(half)
                return
            self.last_error = str(exc)
            self._reject_body(body, records, exc)
            return
        self.sent_batches += 1
        self.sent_records += records
        if backlog:  # the server is back: wake the replayer for the backlog
            self._away_until = 0.0
            with self._cond:
                self._cond.notify_all()

    def flush(self, timeout: float = 30.0) -> bool:
        """Try to empty the spool within ``timeout`` seconds; True when it is empty."""
        return self.drain(timeout) == 0

    def drain(self, timeout: float) -> int:
        """Send what the spool holds, oldest first, in the caller's thread, until it is
        empty, ``timeout`` seconds pass, or the server stays unreachable (two attempts a short
        pause apart); files another sender holds are waited for. Returns how many batches
        are still spooled."""
        deadline = time.monotonic() + max(0.0, timeout)
        failures = 0
        while time.monotonic() < deadline:
            try:
                if not self._replay_once():
                    if not self.spool.files():
                        break
                    time.sleep(0.05)  # what is left is being sent (our replayer, or another
                    continue  # process): wait for it until the timeout
                failures = 0
            except _Retryable as exc:
                self.last_error = str(exc)
                failures += 1
                if failures >= 2:
                    break
                time.sleep(min(BACKOFF_BASE, max(0.0, deadline - time.monotonic())))
            except Exception as exc:  # draining must never raise into the application
                self.last_error = f"{type(exc).__name__}: {exc}"
                break
        return len(self.spool.files())

    def spooled(self) -> tuple[int, int]:
        """(batches, records) waiting in the spool."""
        files = self.spool.files()
        return len(files), sum(Spool.records_of(p) for p in files)

    def report_undelivered(self) -> None:
        """Log what is still spooled (at exit): where, how much, and why it is not sent."""
        batches, records = self.spooled()
        if batches:
            log.warning(
                "flightlog: %d record(s) in %d batch(es) are still spooled in %s, not yet "
                "delivered to %s (%s); the next process that configures %s sends them",
                records,
                batches,
                self.spool.dir,
                self.url,
                self.last_error or "the server did not take them in time",
                self.url,
            )

    def report_drops(self, recorder: str, service: str | None, dropped: int) -> None:
        """Nothing to do here: OTLP has no place for a recorder's drop count, so drops in
        remote mode are shown by ``flightlog.stats()`` and logged by the writer."""

    def close(self) -> None:
        """Stop the replayer after one last attempt to drain the spool (bounded); what is
        left stays on disk for the next process."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify_all()
        self._thread.join(self.close_timeout + 1)
        deadline = time.monotonic() + self.close_timeout
        try:
            while time.monotonic() < deadline and self._replay_once():
                pass
        except _Retryable as exc:  # the server is still away: the spool keeps the rest
            self.last_error = str(exc)
        except Exception as exc:  # close() must not raise into application shutdown
            self.last_error = f"{type(exc).__name__}: {exc}"
        self._client.close()

    def stats(self) -> dict[str, Any]:
        files = self.spool.files()
        return {
            "sink": "remote",
            "url": self.url,
            "sent_batches": self.sent_batches,
            "sent_records": self.sent_records,
            "spooled_batches": self.spooled_batches,
            "replayed_batches": self.replayed_batches,
            "spool_dir": str(self.spool.dir),
            "spool_pending_batches": len(files),
            "spool_pending_bytes": self.spool.size(),
            "spool_limit_bytes": self.spool.limit,
            "spool_dropped_batches": self.spool_dropped_batches,
            "spool_dropped_records": self.spool_dropped_records,
            "rejected_batches": self.rejected_batches,
            "rejected_spans": self.rejected_spans,
            "retries": self.retries,
            "last_error": self.last_error,
        }

    # -- delivery -----------------------------------------------------------------------
    def _post(self, body: bytes) -> None:
        httpx = self._httpx
        try:
            resp = self._client.post(self.endpoint, content=body)
        except httpx.HTTPError as exc:
            raise _Retryable(f"cannot reach {self.endpoint}: {type(exc).__name__}: {exc}") from exc
        if resp.status_code == 200:
            self._partial(resp.content)
            return
        message = _status_message(resp)
        if resp.status_code in RETRYABLE:
            raise _Retryable(
                f"{self.endpoint} answered {resp.status_code}: {message}",
                parse_retry_after(resp.headers.get("retry-after")),
            )
        raise _Rejected(
            resp.status_code, f"{self.endpoint} rejected a batch with {resp.status_code}: {message}"
        )

    def _partial(self, content: bytes) -> None:
        if not content:
            return
        try:
            from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
                ExportTraceServiceResponse,
            )

            resp = ExportTraceServiceResponse()
            resp.ParseFromString(content)
        except Exception:
            return
        if resp.partial_success.rejected_spans:
            self.rejected_spans += resp.partial_success.rejected_spans
            self.last_error = resp.partial_success.error_message
            log.warning(
                "flightlog server rejected %d span(s): %s",
                resp.partial_success.rejected_spans,
                resp.partial_success.error_message,
            )

    def _to_spool(self, body: bytes, records: int) -> None:
        if self.spool.add(body, records):
            self.spooled_batches += 1
            with self._cond:
                self._cond.notify_all()
            return
        self.spool_dropped_batches += 1
        self.spool_dropped_records += records
        log.error(
            "flightlog spool %s is full (limit %d bytes): dropped a batch of %d record(s); "
            "%d record(s) dropped so far",
            self.spool.dir,
            self.spool.limit,
            records,
            self.spool_dropped_records,
        )

    def _reject_body(self, body: bytes, records: int, exc: Exception) -> None:
        self.rejected_batches += 1
        if self.spool.add(body, records):
            newest = self.spool.files()[-1]
            self.spool.reject(newest)
        log.error("%s; kept in %s", exc, self.spool.dir / "rejected")

    # -- the replayer -------------------------------------------------------------------
    def _start_replayer(self) -> None:
        self._thread = threading.Thread(
            target=self._replay_loop, name="flightlog-spool", daemon=True
        )
        self._thread.start()

    def _after_fork(self) -> None:
        self._cond = threading.Condition()
        if not self._closing:
            self._start_replayer()

    def _replay_once(self) -> bool:
        """Send the oldest spooled file. True if the spool advanced (sent or moved aside)."""
        for path in self.spool.files():
            try:
                fh = open(path, "rb")  # noqa: SIM115 - held for the lock's lifetime
            except FileNotFoundError:
                continue  # another process sent it
            with fh:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # another process is sending it
                if not path.exists():
                    continue
                body = fh.read()
                try:
                    self._post(body)
                except _Rejected as exc:
                    self.rejected_batches += 1
                    self.last_error = str(exc)
                    log.error("%s; moved to %s", exc, self.spool.dir / "rejected")
                    self.spool.reject(path)
                    return True
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                self.replayed_batches += 1
                self.sent_batches += 1
                self.sent_records += Spool.records_of(path)
                return True
        return False

    def _replay_loop(self) -> None:
        attempt = 0
        while True:
            with self._cond:
                if self._closing:
                    return
            wait = 1.0
            try:
                if self._replay_once():
                    attempt = 0
                    self._away_until = 0.0
                    continue
            except _Retryable as exc:
                self.retries += 1
                self.last_error = str(exc)
                attempt += 1
                # attempt + 1: the first retry may wait up to 2 * BACKOFF_BASE
                wait = backoff_s(
                    attempt + 1,
                    base_s=BACKOFF_BASE,
                    cap_s=BACKOFF_MAX,
                    retry_after_s=exc.retry_after,
                )
                self._away_until = time.monotonic() + wait
            except Exception as exc:  # never let the replayer die
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("flightlog spool replay failed")
            with self._cond:
                if self._closing:
                    return
                self._cond.wait(wait)


def _service_of(batch: Batch) -> str | None:
    for r in batch.runs:
        if r.service:
            return r.service
    return None


def _halves(batch: Batch) -> list[Batch]:
    """Split a batch in two (for a server whose body limit it exceeds)."""
    a, b = Batch(), Batch()
    for name in ("runs", "steps", "edges", "payloads", "findings"):
        items = getattr(batch, name)
        mid = len(items) // 2
        getattr(a, name).extend(items[:mid])
        getattr(b, name).extend(items[mid:])
    return [x for x in (a, b) if len(x)]


def _status_message(resp: Any) -> str:
    ctype = resp.headers.get("content-type", "")
    if "json" in ctype:
        try:
            return str(resp.json().get("message") or resp.text[:300])
        except Exception:
            return str(resp.text[:300])
    if "protobuf" in ctype and resp.content:
        # google.rpc.Status: field 2 is the message
        data = resp.content
        i = data.find(b"\x12")
        if i >= 0 and i + 2 <= len(data):
            n = data[i + 1]
            return str(data[i + 2 : i + 2 + n].decode("utf-8", errors="replace"))
    return str(resp.text[:300])
