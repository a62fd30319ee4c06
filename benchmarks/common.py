"""Helpers shared by the benchmark scripts: header (git SHA, threads, load), interleaved timing, Markdown tables.

    from common import print_header, set_threads, time_interleaved, markdown_table
    set_threads(2)
    print_header("decode RTF", {"audio_s": 10.0})
    timings = time_interleaved({"a": fn_a, "b": fn_b}, repeat=5)
    print(markdown_table(["name", "median ms"], [[k, 1e3 * t.median_s] for k, t in timings.items()]))

Timing rules: every candidate is called ``warmup`` times first (allocator, lazy init, compilation), then the
candidates take turns call by call for ``repeat`` rounds, so a load spike from another job slows all of them alike;
the median of the rounds is reported. Benchmarks run from a checkout (``python benchmarks/bench_x.py``): the scripts
put the repository root on ``sys.path`` themselves.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
"""``../shared/data`` beside the repository root: the project's small real-speech sets."""
LOAD_WARN = 0.5
"""1-minute load average above which the header warns that timings are noisy and pessimistic."""


def git_sha(repo: Path = REPO_ROOT) -> str:
    """Short SHA of HEAD, with ``-dirty`` when tracked files differ from it; ``unknown`` outside a git checkout."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=repo, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], cwd=repo, capture_output=True).returncode
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def set_threads(num_threads: int) -> int:
    """Set torch's intra-op CPU threads; returns the count torch reports afterwards."""
    if num_threads < 1:
        raise ValueError(f"--threads must be >= 1, got {num_threads}")
    torch.set_num_threads(num_threads)
    return torch.get_num_threads()


def cpu_name() -> str:
    """CPU model from /proc/cpuinfo (Linux), else ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def print_header(title: str, settings: dict[str, object]) -> float:
    """Print what a result row needs to be reproducible, and warn about a busy machine.

    Args:
        title: first line.
        settings: benchmark options printed as ``key=value``.
    Returns:
        the 1-minute load average.
    """
    load_1m, load_5m, _ = os.getloadavg()
    print(f"# {title}")
    print(f"git {git_sha()} | torch {torch.__version__} | torch threads {torch.get_num_threads()} "
          f"(interop {torch.get_num_interop_threads()}) | {cpu_name()}, {os.cpu_count()} cores | "
          f"python {platform.python_version()}")
    print("settings: " + " ".join(f"{k}={v}" for k, v in settings.items()))
    print(f"load average: {load_1m:.2f} (1 min) {load_5m:.2f} (5 min)")
    if load_1m > LOAD_WARN:
        print(f"WARNING: load average > {LOAD_WARN}: other jobs are running, timings will be noisy and pessimistic")
    return load_1m


@dataclass
class Timing:
    """Wall times of one candidate: ``runs_s`` in seconds, one per round (warm-up calls excluded)."""

    runs_s: list[float]

    @property
    def median_s(self) -> float:
        return statistics.median(self.runs_s)

    @property
    def min_s(self) -> float:
        return min(self.runs_s)


def time_interleaved(candidates: dict[str, Callable[[], object]], repeat: int, warmup: int = 1,
                     sync: Callable[[], None] | None = None) -> dict[str, Timing]:
    """Time candidates taking turns, so load changes hit all of them alike.

    Args:
        candidates: name -> zero-argument callable (one timed call each per round).
        repeat: timed rounds (>= 1).
        warmup: untimed calls per candidate before the first round.
        sync: called before reading the clock (e.g. ``torch.cuda.synchronize``) so queued device work counts.
    Returns:
        name -> Timing, in the order of ``candidates``.
    """
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    if sync is not None:
        sync()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeat):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            if sync is not None:
                sync()
            times[name].append(time.perf_counter() - start)
    return {name: Timing(t) for name, t in times.items()}


def _cell(value: object, digits: int) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}" if value == value else ""  # NaN -> empty cell
    return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]], digits: int = 3) -> str:
    """A GitHub Markdown table; floats get ``digits`` decimals, text columns are left- and numbers right-aligned."""
    cells = [[_cell(v, digits) for v in row] for row in rows]
    for row in cells:
        if len(row) != len(headers):
            raise ValueError(f"row {row} has {len(row)} cells, expected {len(headers)}")
    numeric = [bool(rows) and all(isinstance(r[i], (int, float)) for r in rows) for i in range(len(headers))]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.rjust(w) if num else v.ljust(w)
                                 for v, w, num in zip(values, widths, numeric)) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if num else ("-" * (w + 2)) for w, num in zip(widths, numeric)) + "|"
    return "\n".join([line(list(headers)), rule] + [line(r) for r in cells])


def count_params(model: torch.nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())
