"""SIGINT/SIGTERM handling and the exit statuses of the ``metarl`` command.

During ``metarl train`` the first signal asks the training loop to stop after the
current iteration, with a checkpoint (exit status 128 + the signal's number); a
second signal stops at once (:data:`EXIT_INTERRUPTED`). Every other command stops
at the first signal (:data:`EXIT_INTERRUPTED`). :mod:`metarl.errors` lists every
exit status.

The handler is installed once, at start-up, and never removed: a signal that
arrives while the process is already shutting down (closing Ray, flushing
TensorBoard, returning from ``main``) still gets the documented status instead of
Python's default (a ``KeyboardInterrupt`` traceback or death by the signal).
Stopping at once is safe for the run directory: checkpoints are written to a
temporary file and renamed, so an interrupted write leaves the older ones intact.

This module imports nothing heavy: it is set up before torch is imported.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Any, Iterator

from .errors import EXIT_INTERRUPTED

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread when a signal stops the command at once."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum


class StopRequests:
    """What signals asked for, and the handler that records them.

    ``signum`` is the first signal received, ``count`` how many arrived. Inside
    :meth:`deferred` (the training loop) the first signal is only recorded; any
    other signal raises :class:`Interrupted` once, and later ones are absorbed
    while that unwinds. After :meth:`finish` (the command's work and cleanup are
    done) a second signal ends the process with :data:`EXIT_INTERRUPTED` straight
    away, and a first one is ignored.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.count = 0
        self._defer = False
        self._raised = False
        self._finished = False
        self._installed = False

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    @property
    def stopped_at_once(self) -> bool:
        """A signal ended (or will end) the command before it finished its work."""
        return self._raised or (self.count >= 2)

    def install(self) -> bool:
        """Install the handler for SIGINT and SIGTERM for the rest of the process.

        Returns False (and does nothing) outside the main thread, where Python
        cannot set signal handlers.
        """
        if threading.current_thread() is not threading.main_thread():
            return False
        for s in SIGNALS:
            signal.signal(s, self._handle)
        self._installed = True
        return True

    def _handle(self, signum: int, frame: Any) -> None:
        self.count += 1
        name = signal.Signals(signum).name
        if self.count == 1:
            self.signum = signum
            if self._defer:
                print(f"metarl: {name} received; stopping after this iteration with a "
                      "checkpoint (send it again to stop at once)", flush=True)
                return
        if self._finished:
            if self.count == 1:
                return  # the work is done; a lone late signal changes nothing
            # nothing is left to clean up, and the status must still say "stopped at once"
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_INTERRUPTED)
        if self._raised:
            return  # already unwinding from the stop; let the cleanup finish
        self._raised = True
        what = "second " if self.count > 1 else ""
        raise Interrupted(signum, f"{what}{name}: stopping at once")

    @contextlib.contextmanager
    def deferred(self) -> Iterator["StopRequests"]:
        """Within the block the first signal only sets ``signum`` (the caller stops at a
        safe point). Installs the handler for the block if nobody installed it."""
        installed_here = not self._installed and self._install_temporarily()
        if installed_here:
            self.reset()  # a new session of a library caller: earlier signals are not ours
        self._defer = True
        try:
            yield self
        finally:
            self._defer = False
            if installed_here:
                self._restore()

    def _install_temporarily(self) -> bool:
        # library use (train() called from Python): leave the caller's handlers as they were
        if threading.current_thread() is not threading.main_thread():
            return False
        self._previous = {s: signal.getsignal(s) for s in SIGNALS}
        return self.install()

    def _restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._installed = False

    def reset(self) -> None:
        """Forget earlier signals (a new command in the same process)."""
        self.signum, self.count = None, 0
        self._raised = self._finished = False

    def finish(self) -> None:
        """Cleanup is done: from now on a second signal exits at once."""
        self._finished = True

    def exit_status(self, status: int) -> int:
        """The command's exit status given the status its work returned."""
        return EXIT_INTERRUPTED if self.stopped_at_once else status


REQUESTS = StopRequests()
"""The process's stop requests, shared by the command line and the training loop."""


@contextlib.contextmanager
def keep_handler(signum: int = signal.SIGTERM) -> Iterator[None]:
    """Restore ``signum``'s handler after the block (``ray.init`` installs its own)."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signum) if main else None
    try:
        yield
    finally:
        if main and previous is not None:
            signal.signal(signum, previous)
