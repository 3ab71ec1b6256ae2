"""What happens after records are stored: the run-end pipeline.

When runs end (in embedded mode after the background writer has stored them; in server
mode after ingestion) ``runs_ended(store, run_ids)`` calls each registered hook. Hooks are
plain callables ``hook(store, run_ids)``; detectors and the response engine register here.
A hook that raises is logged and counted, never propagated: the pipeline must not stop
recording.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger("flightlog.pipeline")

RunEndHook = Callable[[Any, Sequence[str]], None]

# Built-in hooks, imported lazily on first use: "module:function".
BUILTIN_HOOKS: list[str] = [
    "flightlog.detect.hook:on_runs_ended",
    "flightlog.respond.engine:on_runs_ended",  # a no-op without a flightlog.toml with channels
]

_hooks: list[RunEndHook] = []
_loaded = False
_lock = threading.Lock()
hook_errors = 0


def register(hook: RunEndHook) -> RunEndHook:
    """Add a hook (usable as a decorator). Registering the same callable twice is a no-op."""
    with _lock:
        if hook not in _hooks:
            _hooks.append(hook)
    return hook


def unregister(hook: RunEndHook) -> None:
    with _lock:
        if hook in _hooks:
            _hooks.remove(hook)


def _load_builtins() -> None:
    global _loaded
    with _lock:
        if _loaded:
            return
        _loaded = True
        paths = list(BUILTIN_HOOKS)
    for path in paths:
        module_name, attr = path.split(":")
        try:
            register(getattr(importlib.import_module(module_name), attr))
        except Exception:  # a broken built-in must not stop recording
            log.exception("cannot load run-end hook %s", path)


def runs_ended(store: Any, run_ids: Sequence[str]) -> None:
    """Run every hook for runs that just ended. Never raises."""
    global hook_errors
    if not run_ids:
        return
    _load_builtins()
    for hook in list(_hooks):
        try:
            hook(store, run_ids)
        except Exception:
            hook_errors += 1
            log.exception("run-end hook %r failed for %d run(s)", hook, len(run_ids))
