"""SIGTERM handled as Ctrl-C: a command stopped by ``kill``, a CI timeout or a service manager
unwinds the same clean way as when the user presses Ctrl-C (its ``finally`` blocks run: the
records written so far stay, the temporary files go, the worker processes are stopped)."""

from __future__ import annotations

import contextlib
import signal
import threading

__all__ = ["sigterm_as_interrupt"]


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM raises KeyboardInterrupt in the main thread (elsewhere: no
    change, Python delivers signals to the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
