"""Instructions a Python child process executes, counted by valgrind's cachegrind: nearly
independent of the machine's load, for benches that report the difference of two runs (the
work counted, less the same start-up and set-up). Needs ``valgrind`` on the PATH."""

from __future__ import annotations

import re
import subprocess
import sys


def instructions(args: list[str], env: dict[str, str]) -> int:
    """Instructions (cachegrind's ``I refs``) of ``python ARGS`` run with ``env``."""
    err = subprocess.run(
        [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
            sys.executable,
            *args,
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stderr
    m = re.search(r"I\s+refs:\s+([\d,]+)", err)
    if m is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{err[-2000:]}")
    return int(m.group(1).replace(",", ""))
