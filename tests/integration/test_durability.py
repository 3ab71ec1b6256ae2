"""SIGKILL right after flush() returned loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import flightlog


def test_sigkill_after_flush_loses_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "kill.db"
    code = textwrap.dedent(f"""
        import os, sys, time, flightlog
        flightlog.configure("sqlite:///{db}")

        @flightlog.step(kind="tool")
        def work(i):
            return {{"i": i, "text": "payload " * 10}}

        for n in range(200):
            with flightlog.run("killed", input={{"n": n}}):
                for i in range(5):
                    work(i)
        flightlog.flush()
        print("FLUSHED", flush=True)
        # keep recording: these are not acknowledged and may be lost
        for n in range(1000):
            with flightlog.run("after-flush"):
                work(n)
        time.sleep(30)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "FLUSHED"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    store = flightlog.open_store(f"sqlite:///{db}")
    from flightlog.store import RunQuery

    runs = store.list_runs(RunQuery(workflow="killed", limit=1000))
    assert len(runs) == 200
    assert all(r.status == "succeeded" for r in runs)
    with store.read() as tx:
        (steps,) = tx.fetchone(
            "SELECT COUNT(*) FROM steps s JOIN runs r ON r.id = s.run_id "
            "WHERE r.workflow = 'killed'"
        )
    assert steps == 1000


def test_atexit_flushes_without_an_explicit_flush(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "exit.db"
    code = textwrap.dedent(f"""
        import flightlog
        flightlog.configure("sqlite:///{db}")

        @flightlog.step(kind="tool")
        def work(i):
            return i

        for n in range(50):
            with flightlog.run("at-exit"):
                work(n)
        # no flush(): the atexit hook must make these durable
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    store = flightlog.open_store(f"sqlite:///{db}")
    assert store.count_runs() == 50


def test_forked_child_records_through_its_own_writer(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "fork.db"
    code = textwrap.dedent(f"""
        import os, flightlog
        flightlog.configure("sqlite:///{db}")

        @flightlog.step(kind="tool")
        def work(i):
            return i

        with flightlog.run("parent-before"):
            work(1)
        pid = os.fork()
        if pid == 0:
            with flightlog.run("child"):
                work(2)
            flightlog.flush()
            os._exit(0)
        os.waitpid(pid, 0)
        with flightlog.run("parent-after"):
            work(3)
        flightlog.flush()
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    store = flightlog.open_store(f"sqlite:///{db}")
    runs = sorted(r.workflow for r in store.list_runs())
    assert runs == ["child", "parent-after", "parent-before"]  # each exactly once
