"""One call on a worker thread, its result (or its exception) collected later.

The pipeline overlaps work that runs mostly outside the interpreter lock (ITK reading a file,
zlib, ONNX Runtime creating a session) with the main thread's own work.

Research use only - not a medical device.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional


class Background:
    """``fn(*args)`` on a worker thread; :meth:`result` waits and returns (or raises) it."""

    def __init__(self, fn: Callable[..., Any], *args: Any, name: str = "c2net-worker"):
        self._out: Any = None
        self._err: Optional[BaseException] = None

        def run() -> None:
            try:
                self._out = fn(*args)
            except BaseException as exc:  # handed to the caller by result()
                self._err = exc

        self._thread = threading.Thread(target=run, name=name, daemon=True)
        self._thread.start()

    def join(self) -> None:
        """Wait for the worker (its result or error is kept for :meth:`result`)."""
        self._thread.join()

    def result(self) -> Any:
        self._thread.join()
        if self._err is not None:
            raise self._err
        return self._out
