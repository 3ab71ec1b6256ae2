"""The run-end worker: ``flightlog serve``'s run-end pipeline in a process of its own.

The server's ingestion (HTTP, decode, the writer) and the run-end pipeline (detectors,
attribution, incidents and alerts, SLOs) are both Python: in one process they share one GIL,
so on a 2-core machine the pipeline's CPU is taken from ingestion. With ``[server] run_end =
"process"`` (the default; ``$FLIGHTLOG_RUN_END``) the server starts this worker, a second
Python process that opens the same store through the composition root
(``flightlog.app.open_store``) and runs ``flightlog.pipeline.runs_ended`` on the batches of
ended run ids the server's pipeline thread hands it, one batch at a time. It also runs the
periodic work (``pipeline.Clock``: paging, escalation, burn rates), so everything that acts on
stored runs after ingestion happens in one process, and the server process imports none of
detection, forensics or response.

Protocol: one JSON object per line. The server writes ``{"id": n, "runs": [...]}`` to the
worker's stdin; the worker answers ``{"id": n, "cpu": s, "seconds": s, "errors": k,
"process_cpu": s, "lock_wait": s}`` on a pipe of its own (its stdout is redirected to stderr,
so nothing the pipeline prints can garble an answer) after ``runs_ended`` returned.

Lifetime: the worker exits when its stdin reaches EOF (the server closed it, or the server
died: the kernel closes the pipe of a SIGKILLed process), after the batch in hand; and within
half a second when its parent process is gone while it is busy (a watchdog thread compares
``os.getppid()`` with the server's pid). It ignores SIGINT and SIGTERM (a Ctrl-C in a terminal,
or systemd's stop, reaches the whole process group: the server shuts it down in order, after
the batch in hand, instead of seeing it die mid-batch and starting another). When the worker
dies (killed, out of memory), the server starts another and hands it the batch it had not
answered again: run-end work is idempotent (finding ids are stable, an attribution is stored
once, ``respond`` claims each run once in ``respond_processed``), so a run of the interrupted
batch whose stages had already run is not attributed, counted or alerted twice; only its
detectors run again.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

log = logging.getLogger("flightlog.server")

ATTEMPTS = 3  # a batch that kills this many workers in a row is abandoned (logged, counted)
# A worker that keeps dying at start (it cannot open the store, a bad config, a broken
# install) is restarted after a growing delay: at once the first time, then 1 s, 2 s, 4 s...
# up to BACKOFF_MAX_S. After FAILING_AFTER deaths with no batch answered in between, the last
# FAILING_AFTER of them within FAILING_WINDOW_S, /readyz says so, however long each worker
# lived (one that dies on every batch, or in its periodic work, after a minute of life fails
# as surely as one that cannot start).
BACKOFF_MAX_S = 60.0
FAILING_AFTER = 3
FAILING_WINDOW_S = 1800.0
STABLE_S = 10.0  # a worker alive this long (or that answered a batch) started fine
# A worker that has not answered a batch after this long (stuck: a lock, a hung hook) is
# killed and the batch handed to another (default of [server] run_end_batch_timeout).
BATCH_TIMEOUT_S = 300.0
# The batch timeout counts from when the worker is ready (started: imported, its store
# open), not from its start: a replacement started on a busy machine, at its low priority,
# may take longer to start than a batch takes. Starting is bounded apart, by this long (or
# the batch timeout, if longer).
STARTUP_TIMEOUT_S = 120.0
# The worker's scheduling niceness: ingestion first. On a machine with a core to spare the
# worker has it; when the cores are busy, the scheduler gives the server (acknowledgements,
# durability) the larger share and run-end work catches up afterwards.
NICENESS = 10
PARENT_CHECK_S = 0.5


@dataclass
class RunEndReport:
    """What one batch of run-end work cost, where it ran."""

    cpu_seconds: float = 0.0  # CPU of the thread that ran ``runs_ended``
    seconds: float = 0.0
    errors: int = 0  # stages, work and hooks that raised (``pipeline.hook_errors``)
    process_cpu_seconds: float | None = None  # the whole worker process so far (process mode)
    lock_wait_seconds: float = 0.0  # waiting for SQLite's write lock (process mode)


class RunEndInThread:
    """Run-end work on the calling thread (``run_end = "thread"``), with the server's store."""

    mode = "thread"
    defer = True  # ingestion first: it shares this process's GIL
    pid: int | None = None
    restarts = 0
    failing: str | None = None

    def __init__(self, store: Any) -> None:
        self.store = store

    def start(self) -> None:
        pass

    def check(self) -> None:
        pass

    def run(self, run_ids: Sequence[str]) -> RunEndReport:
        from flightlog import pipeline

        errors = pipeline.hook_errors
        started = time.monotonic()
        cpu = time.thread_time()
        pipeline.runs_ended(self.store, run_ids)
        return RunEndReport(
            cpu_seconds=time.thread_time() - cpu,
            seconds=time.monotonic() - started,
            errors=pipeline.hook_errors - errors,
        )

    def close(self, timeout: float = 5.0) -> None:
        pass


class WorkerDied(Exception):
    """The worker process exited (or its pipes broke) before answering."""


class RunEndProcess:
    """The server's side of the run-end worker: starts it, hands it batches and waits for its
    answer, restarts it when it dies (handing the unanswered batch over again), stops it.
    Batches are not held back while spans wait to be written (as on a thread): the worker
    runs at a lower scheduling priority (``NICENESS``) instead.

    ``run`` is called from one thread at a time (the ingestor's pipeline thread)."""

    mode = "process"
    defer = False  # the worker has its own GIL: run-end work overlaps ingestion

    def __init__(
        self, url: str, *, clock: bool = True, batch_timeout: float = BATCH_TIMEOUT_S
    ) -> None:
        self.url = url
        self.clock = clock
        self.restarts = 0
        self.batch_timeout = batch_timeout  # [server] run_end_batch_timeout
        self.failures = 0  # worker deaths since a batch was last answered
        self._deaths: deque[float] = deque(maxlen=FAILING_AFTER)  # when (monotonic)
        self._early = 0  # deaths in a row within STABLE_S of starting: the restart delay
        self.last_exit: str | None = None  # how the last worker ended, and its last words
        self._not_before = 0.0  # monotonic time before which no worker is started
        self._started = 0.0
        self._last_stderr = ""
        self._forwarder: threading.Thread | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._answers: IO[bytes] | None = None
        self._ready = False  # the worker said it has started (its first line)
        self._next = 0
        self._in_hand = 0  # runs of the batch the worker is processing (0: none)
        self._closing = False
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def failing(self) -> str | None:
        """Why the run-end worker is failing, or None: ``FAILING_AFTER`` deaths or more
        with no batch answered since, the last ``FAILING_AFTER`` of them within
        ``FAILING_WINDOW_S`` (whatever each worker's age)."""
        deaths = tuple(self._deaths)
        if self.failures < FAILING_AFTER or len(deaths) < FAILING_AFTER:
            return None
        if time.monotonic() - deaths[0] > FAILING_WINDOW_S:
            return None  # deaths long apart (an OOM kill a day): not a failing worker
        return (
            f"the run-end worker died {self.failures} times without answering a batch "
            f"({self.last_exit})"
        )

    def _answered(self) -> None:
        """A batch was answered: the worker works."""
        self.failures = self._early = 0
        self._deaths.clear()

    def start(self) -> None:
        with self._lock:
            if self._closing:
                raise WorkerDied("the server is shutting down")
            if self._proc is not None and self._proc.poll() is None:
                return
            if self._proc is not None:
                self._replace()
            self._spawn()

    def _wait_backoff(self) -> None:
        """Sleep until a worker may be started again (``_not_before``), unless closing."""
        while not self._closing and time.monotonic() < self._not_before:
            time.sleep(min(0.2, max(0.0, self._not_before - time.monotonic())))

    def _replace(self) -> None:
        """Reap the worker that died (or broke its pipes: killed), count a restart, and
        delay the next start if workers keep dying."""
        proc = self._proc
        self._reap()
        self.restarts += 1
        now = time.monotonic()
        if now - self._started >= STABLE_S:
            self._early = 0  # it started fine: no delay before the next
        self._early += 1
        self.failures += 1
        self._deaths.append(now)
        delay = 0.0 if self._early <= 1 else min(BACKOFF_MAX_S, 2.0 ** (self._early - 2))
        self._not_before = now + delay
        code = proc.returncode if proc is not None else None
        self.last_exit = f"status {code}" + (f": {self._last_stderr}" if self._last_stderr else "")
        log.warning(
            "run-end worker exited (%s); starting another%s",
            self.last_exit,
            f" in {delay:g} s" if delay else "",
        )

    def _spawn(self) -> None:
        import flightlog

        read_fd, write_fd = os.pipe()
        env = dict(os.environ)
        # The worker imports the same flightlog as this process, wherever it came from.
        src = os.path.dirname(os.path.dirname(os.path.abspath(flightlog.__file__)))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        try:
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "flightlog.server.runend_worker",
                    self.url,
                    str(os.getpid()),
                    str(write_fd),
                    "clock" if self.clock else "no-clock",
                ],
                stdin=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(write_fd,),
                env=env,
            )
        finally:
            os.close(write_fd)
        # unbuffered: ``select`` then sees every byte not read yet
        self._answers = os.fdopen(read_fd, "rb", buffering=0)
        self._ready = False
        self._started = time.monotonic()
        self._last_stderr = ""
        self._forwarder = threading.Thread(
            target=self._forward, args=(self._proc,), name="flightlog-worker-stderr", daemon=True
        )
        self._forwarder.start()

    def _forward(self, proc: subprocess.Popen[bytes]) -> None:
        """Copy the worker's stderr to the server's, keeping its last line (why it died)."""
        assert proc.stderr is not None
        for line in proc.stderr:
            with contextlib.suppress(OSError):
                os.write(2, line)
            text = line.decode(errors="replace").strip()
            if text:
                self._last_stderr = text[:500]

    def _reap(self) -> None:
        proc, answers = self._proc, self._answers
        self._proc = self._answers = None
        if answers is not None:
            answers.close()
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        # Its pipes may close just before it exits: its own exit status (and last stderr
        # line) say why it died, rather than the SIGKILL sent to a process already dying.
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(1.0)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if self._forwarder is not None:
            self._forwarder.join(1.0)

    def check(self) -> None:
        """Restart the worker if it died while idle (its periodic work must go on)."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            if time.monotonic() - self._started >= STABLE_S:
                self._early = 0  # it started fine (whether it works, its answers say)
            return
        if self._closing:
            return
        if proc is not None:
            with self._lock:
                if self._proc is proc:
                    self._replace()  # counts the death, sets the delay before the next
        if time.monotonic() < self._not_before:
            return  # backing off: a later check (every second) starts it when due
        try:
            self.start()
        except Exception:
            log.exception("cannot restart the run-end worker")

    def run(self, run_ids: Sequence[str]) -> RunEndReport:
        """Hand ``run_ids`` to the worker and wait until it has processed them. If the
        worker dies meanwhile, another is started and given the same batch (up to
        ``ATTEMPTS`` workers); raises ``WorkerDied`` when the batch is abandoned."""
        ids = list(run_ids)
        for _ in range(ATTEMPTS):
            self._wait_backoff()
            self.start()
            try:
                self._in_hand = len(ids)
                try:
                    report = self._exchange(ids)
                finally:
                    self._in_hand = 0
                self._answered()
                return report
            except WorkerDied as exc:
                with self._lock:
                    if self._closing:
                        raise
                    log.warning("run-end worker lost a batch of %d run(s): %s", len(ids), exc)
                    # Its pipe may close before the process is reapable: reap it now, so
                    # the next attempt starts another instead of writing to this one.
                    self._replace()
        raise WorkerDied(
            f"{ATTEMPTS} run-end workers in a row died on a batch of {len(ids)} run(s); "
            f"the last one: {self.last_exit}"
        )

    def _exchange(self, ids: list[str]) -> RunEndReport:
        proc, answers = self._proc, self._answers
        if proc is None or proc.stdin is None or answers is None:
            raise WorkerDied("no worker")
        self._next += 1
        n = self._next
        try:
            proc.stdin.write(json.dumps({"id": n, "runs": ids}).encode() + b"\n")
            proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError) as exc:
            raise WorkerDied(str(exc)) from exc
        # Until the worker says it is ready, it is starting (bounded apart); from then on it
        # has the batch timeout.
        startup = max(STARTUP_TIMEOUT_S, self.batch_timeout)
        deadline = time.monotonic() + (self.batch_timeout if self._ready else startup)
        while True:
            try:
                left = max(0.0, deadline - time.monotonic())
                if not select.select([answers], [], [], left)[0]:
                    if not self._ready:
                        raise WorkerDied(f"not started within {startup:g} s: killed")
                    raise WorkerDied(f"no answer within {self.batch_timeout:g} s: killed")
                line = answers.readline()
            except (OSError, ValueError) as exc:
                raise WorkerDied(str(exc)) from exc
            if not line:
                raise WorkerDied("the worker exited before answering")
            answer = json.loads(line)
            if answer.get("ready") and not self._ready:
                self._ready = True
                deadline = time.monotonic() + self.batch_timeout
                continue
            if answer.get("id") == n:
                return RunEndReport(
                    cpu_seconds=float(answer["cpu"]),
                    seconds=float(answer["seconds"]),
                    errors=int(answer["errors"]),
                    process_cpu_seconds=float(answer["process_cpu"]),
                    lock_wait_seconds=float(answer["lock_wait"]),
                )

    def close(self, timeout: float = 5.0) -> None:
        """Let the worker finish the batch in hand (up to ``timeout`` seconds), then stop it;
        a batch still running after that is abandoned (the worker is killed)."""
        with self._lock:
            self._closing = True
            proc = self._proc
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()  # EOF: the worker exits after the batch in hand
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            if self._in_hand:
                log.warning(
                    "run-end worker still busy at shutdown with a batch of %d run(s); "
                    "abandoned (flightlog detect RUN redoes a run's detection)",
                    self._in_hand,
                )
            else:  # still starting (a slow import): nothing was in hand, nothing is lost
                log.debug("run-end worker still starting at shutdown; stopped")
            proc.kill()
            proc.wait()
        if self._answers is not None:
            self._answers.close()


# -- the worker process -----------------------------------------------------------------------
def _watch_parent(parent: int) -> None:
    """Exit as soon as the server is gone (it may have been SIGKILLed while a batch runs)."""
    while True:
        if os.getppid() != parent:
            os._exit(0)
        time.sleep(PARENT_CHECK_S)


def _import_stages() -> None:
    """Import what the stages import when first used, before ``gc.freeze``."""
    import flightlog.detect.builtin
    import flightlog.forensics.attribution
    import flightlog.forensics.ledger
    import flightlog.forensics.spectrum
    import flightlog.reliability.burn_alerts
    import flightlog.respond.engine  # noqa: F401


@contextlib.contextmanager
def _batch_without_gc() -> Iterator[None]:
    """Python's cyclic garbage collector off while one batch of runs ends, on again after.

    Ending runs makes no reference cycles to speak of (a batch of 500 runs of the ingestion
    bench leaves none for the collector; objects are freed by their reference counts), but
    it allocates long-lived objects (the batch's records, the baselines' samples) faster
    than they die, so the collector's thresholds fired ~850 young, ~75 middle and ~7 full
    collections per 5,000 runs, each walking the batch's live records again: about 15% of
    the worker's run-end CPU. With it off for the batch, the first allocation after the
    batch starts a young collection (its counter is past the threshold), which frees any
    cycle the batch did make; the older generations follow their usual thresholds. Only
    in this process: the worker does nothing else while a batch runs but its clock's
    periodic work, and an embedded SDK or a server thread must never switch a host
    process's collector off."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def main(argv: Sequence[str]) -> int:
    url, parent, answer_fd, clock_arg = argv
    answers = os.fdopen(int(answer_fd), "wb", buffering=0)
    os.dup2(2, 1)  # a stray print goes to the server's stderr, not into an answer
    for signum in (signal.SIGINT, signal.SIGTERM):  # the server stops it (stdin EOF)
        signal.signal(signum, signal.SIG_IGN)
    with contextlib.suppress(OSError, AttributeError):  # not on every platform
        os.nice(NICENESS)
    threading.Thread(target=_watch_parent, args=(int(parent),), daemon=True).start()
    logging.basicConfig(level=logging.WARNING, format="flightlog run-end worker: %(message)s")

    from flightlog import pipeline
    from flightlog.app import open_store

    store = open_store(url)
    _import_stages()
    clock = pipeline.Clock(store).start() if clock_arg == "clock" else None
    # What is loaded by now (modules, the store) lives as long as the worker: out of the
    # cyclic collector's sight, so no collection walks it again (``_batch_without_gc``).
    gc.collect()
    gc.freeze()
    try:
        try:
            answers.write(b'{"ready": true}\n')  # started: the batch timeout counts from here
        except (BrokenPipeError, OSError):
            return 0  # the server is gone
        for line in sys.stdin.buffer:
            request = json.loads(line)
            errors = pipeline.hook_errors
            started = time.monotonic()
            cpu = time.thread_time()
            waited = getattr(store, "lock_wait_seconds", 0.0)
            try:
                with _batch_without_gc():
                    pipeline.runs_ended(store, request["runs"])
            except Exception:  # runs_ended never raises; belt and braces
                pipeline.hook_errors += 1
                log.exception("run-end pipeline failed")
            answer = {
                "id": request["id"],
                "cpu": time.thread_time() - cpu,
                "seconds": time.monotonic() - started,
                "errors": pipeline.hook_errors - errors,
                "process_cpu": time.process_time(),
                "lock_wait": getattr(store, "lock_wait_seconds", 0.0) - waited,
            }
            try:
                answers.write(json.dumps(answer).encode() + b"\n")
            except (BrokenPipeError, OSError):
                return 0  # the server is gone
    finally:
        if clock is not None:
            clock.stop()
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
