"""Exit statuses of the ``metarl`` command and the errors that map to them.

Each status means one thing (docs/reliability.md, "Exit statuses"):

====  ==========================================================================
0     finished
1     an unexpected error: a bug in metarl or in user code (Python traceback)
2     bad input: command line, config, files, run directory or checkpoint;
      nothing was trained or written
3     training stopped after ``train.max_skipped_updates`` non-finite meta-updates
      in a row; a checkpoint of the last finite state was written (resumable)
4     stopped at once by a signal (a second one during ``metarl train``, the first
      one otherwise); work in progress was not saved, existing checkpoints are intact
5     numerical failure the command cannot step past: adaptation went non-finite
      during evaluation, or a task's simulations never produce a valid step
128+N stopped by signal N (130: SIGINT, 143: SIGTERM) at the end of a training
      iteration, after writing a checkpoint (resumable)
====  ==========================================================================

This module imports nothing heavy: the command line maps errors to statuses
without importing torch.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_BUG = 1
EXIT_BAD_INPUT = 2
EXIT_NONFINITE_UPDATES = 3
EXIT_INTERRUPTED = 4
EXIT_NUMERICAL = 5


def exit_after_signal(signum: int) -> int:
    """Status of a run stopped cleanly (with a checkpoint) by signal ``signum``."""
    return 128 + signum


class MetarlError(Exception):
    """An error the command line reports on one line, exiting with ``exit_status``."""

    exit_status = EXIT_BUG


class BadInputError(MetarlError):
    """The command cannot run with what it was given (config, files, run directory)."""

    exit_status = EXIT_BAD_INPUT


class NumericalError(MetarlError):
    """NaN/Inf numbers or diverging simulations left nothing sensible to compute."""

    exit_status = EXIT_NUMERICAL


class TrainingStopped(MetarlError):
    """Training stopped early on purpose (a signal) or for safety (repeated NaN/Inf);
    a checkpoint of the last good state was written first."""

    def __init__(self, message: str, exit_status: int) -> None:
        super().__init__(message)
        self.exit_status = exit_status
