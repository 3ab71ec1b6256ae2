"""100 concurrent runs across threads and asyncio tasks never mix their steps."""

from __future__ import annotations

import asyncio
import threading

import flightlog


@flightlog.step(kind="tool")
def tag(run_no: int, i: int) -> str:
    return f"run-{run_no}-step-{i}"


@flightlog.step(kind="llm")
async def atag(run_no: int, i: int) -> str:
    await asyncio.sleep(0.001)
    return f"run-{run_no}-step-{i}"


def test_threads_and_tasks_do_not_cross_talk(store) -> None:  # type: ignore[no-untyped-def]
    run_ids: dict[int, str] = {}
    lock = threading.Lock()

    def thread_run(n: int) -> None:
        with flightlog.run(f"thread-{n}") as run:
            for i in range(5):
                tag(n, i)
        with lock:
            run_ids[n] = run.id

    async def task_run(n: int) -> None:
        async with flightlog.run(f"task-{n}") as run:
            for i in range(5):
                await atag(n, i)
        run_ids[n] = run.id

    async def all_tasks() -> None:
        await asyncio.gather(*(task_run(n) for n in range(50, 100)))

    threads = [threading.Thread(target=thread_run, args=(n,)) for n in range(50)]
    for t in threads:
        t.start()
    asyncio.run(all_tasks())
    for t in threads:
        t.join()
    flightlog.flush()

    assert len(run_ids) == 100 and len(set(run_ids.values())) == 100
    from flightlog.payload import decode

    for n, run_id in run_ids.items():
        rec = store.get_record(run_id)
        assert rec.run.workflow in (f"thread-{n}", f"task-{n}")
        assert [s.index for s in rec.steps] == [1, 2, 3, 4, 5]
        outputs = store.get_payloads([s.output_hash for s in rec.steps])
        got = [decode(outputs[s.output_hash]) for s in rec.steps]
        assert got == [f"run-{n}-step-{i}" for i in range(5)]
        assert all(s.parent_id is None for s in rec.steps)
