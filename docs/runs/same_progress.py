"""Check that two runs' ``progress.csv`` agree value for value, timings aside: a rerun of a
published command reproduces it (docs/runs/README.md, ``pearl_ant_goal_cpu_long``).

    python docs/runs/same_progress.py RERUN/progress.csv docs/runs/RUN/progress.csv

Compares the iterations both files hold (a rerun in progress is shorter) on every column but
``wall_s`` and ``time/*``, as exact strings: a deterministic run writes the same digits.
Exits 1 and names the first differences when any value differs, 2 when there is nothing to
compare.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path


def timing(column: str) -> bool:
    return column == "wall_s" or column.startswith("time/")


def read(path: Path) -> list[dict[str, str]]:
    """The rows of a ``progress.csv``; exits 2 naming the file when it cannot be one."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        print(f"same_progress.py: cannot read {path}: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    if not rows or "iteration" not in rows[0]:
        print(f"same_progress.py: {path} is not a metarl progress.csv (no rows, or no "
              "'iteration' column)", file=sys.stderr)
        raise SystemExit(2)
    return rows


def differences(a: list[dict[str, str]], b: list[dict[str, str]]
                ) -> tuple[int, list[str], list[tuple[str, str, str, str]]]:
    """Iterations compared, the non-timing columns compared, and each differing
    ``(iteration, column, a's value, b's value)``. A column only one file has is a
    difference at the first iteration."""
    n = min(len(a), len(b))
    shared = [c for c in a[0] if not timing(c) and c in b[0]]
    only = [c for c in list(a[0]) + list(b[0]) if not timing(c) and (c in a[0]) != (c in b[0])]
    found = [(a[0]["iteration"], c, a[0].get(c, "(absent)"), b[0].get(c, "(absent)"))
             for c in only]
    for row_a, row_b in zip(a[:n], b[:n]):
        found += [(row_a["iteration"], c, row_a[c], row_b[c]) for c in shared
                  if row_a[c] != row_b[c]]
    return n, shared, found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    args = parser.parse_args(argv)
    n, columns, found = differences(read(args.first), read(args.second))
    print(f"compared the first {n} iterations on {len(columns)} columns (timings excluded): "
          f"{len(found)} differing values")
    for iteration, column, x, y in found[:10]:
        print(f"  iteration {iteration}, {column}: {x} vs {y}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
