"""Run logging: TensorBoard scalars and ``progress.csv`` (the console line of an iteration is
the algorithm's own, :meth:`metarl.algos.MetaLearner.progress_line`).

Scalars are keyed by their TensorBoard tag (``meta_train/return/adapt_0``, ...);
the x-axis is the total number of environment steps so far.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter


def hparams_markdown(config: dict[str, Any]) -> str:
    """The resolved config as a two-column markdown table."""
    lines = ["| key | value |", "|---|---|"]
    for section, values in config.items():
        for key, value in values.items():
            lines.append(f"| {section}.{key} | {value} |")
    return "\n".join(lines)


class RunLogger:
    """Writes each iteration's statistics to TensorBoard and CSV."""

    def __init__(self, run_dir: Path, tensorboard: bool = True,
                 resume_after: int | None = None, resume_env_steps: int = 0) -> None:
        """``resume_after``: continue a run whose checkpoint is at this iteration, after
        ``resume_env_steps`` environment steps; what was logged after it (those
        iterations are redone) is dropped: ``progress.csv`` rows here, TensorBoard points
        by the reader (``purge_step``), so every curve keeps one point per iteration."""
        self.run_dir = Path(run_dir)
        # TensorBoard's x-axis is env steps: points logged at or after purge_step by
        # earlier event files are discarded when the run is read
        purge_step = resume_env_steps + 1 if resume_after is not None else None
        self.writer = (SummaryWriter(log_dir=str(self.run_dir), purge_step=purge_step)
                       if tensorboard else None)
        self._csv_path = self.run_dir / "progress.csv"
        self._csv_file = None
        self._csv_writer: csv.DictWriter | None = None
        if resume_after is not None and self._csv_path.exists():
            self._keep_rows_up_to(resume_after)

    def _keep_rows_up_to(self, iteration: int) -> None:
        with open(self._csv_path, newline="") as handle:
            reader = csv.DictReader(handle)
            fieldnames = list(reader.fieldnames or [])
            rows = [row for row in reader if int(row["iteration"]) <= iteration]
        self._rewrite_csv(fieldnames, rows)

    def _rewrite_csv(self, fieldnames: list[str], rows: list[dict[str, Any]]) -> None:
        """Replace ``progress.csv`` atomically, then keep appending to it."""
        if self._csv_file is not None:
            self._csv_file.close()
        tmp = self._csv_path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fieldnames)
            writer.writeheader()
            writer.writerows(rows)
        tmp.replace(self._csv_path)
        self._csv_file = open(self._csv_path, "a", newline="")
        self._csv_writer = csv.DictWriter(self._csv_file, fieldnames=fieldnames)

    def log_hparams(self, config: dict[str, Any]) -> None:
        if self.writer is not None:
            self.writer.add_text("hyperparameters", hparams_markdown(config), 0)

    def log_iteration(self, iteration: int, env_steps: int, wall_s: float, iteration_s: float,
                      stats: dict[str, float]) -> None:
        """Record one iteration; ``stats`` maps TensorBoard tags to values."""
        row = {"iteration": iteration, "env_steps": env_steps, "wall_s": round(wall_s, 3),
               "time/iteration": iteration, "time/iteration_s": iteration_s, **stats}
        if self.writer is not None:
            for tag, value in row.items():
                if "/" in tag:
                    self.writer.add_scalar(tag, value, env_steps)
            self.writer.flush()
        self._write_csv(row)

    def _write_csv(self, row: dict[str, Any]) -> None:
        if self._csv_writer is None:
            self._csv_file = open(self._csv_path, "w", newline="")
            self._csv_writer = csv.DictWriter(self._csv_file, fieldnames=list(row))
            self._csv_writer.writeheader()
        known = list(self._csv_writer.fieldnames)
        if not set(row) <= set(known):
            # a run resumed by a newer metarl logs columns its file lacks: widen the
            # header once; earlier rows leave the new cells empty
            with open(self._csv_path, newline="") as handle:
                rows = list(csv.DictReader(handle))
            self._rewrite_csv(known + [k for k in row if k not in known], rows)
        self._csv_writer.writerow(row)
        self._csv_file.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self._csv_file is not None:
            self._csv_file.close()
