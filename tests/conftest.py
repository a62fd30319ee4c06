"""Shared fixtures: paths to ../shared/data, a tiny labelled corpus made from real FSDD recordings."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

# CI machines have 2 cores; intra-op threads in the test process and in the subprocesses it starts
# (torchrun, recipes) oversubscribe them, so every test runs single-threaded.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    assert SHARED_DATA.is_dir(), f"{SHARED_DATA} missing: tests read real recordings from ../shared/data"
    return SHARED_DATA


def write_fsdd_manifest(path: Path, rows: list[dict]) -> Path:
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps({**r, "audio": str(SHARED_DATA / "fsdd" / r["audio"])}) + "\n")
    return path


@pytest.fixture(scope="session")
def fsdd_tiny(tmp_path_factory) -> dict[str, Path]:
    """train/dev manifests over a few dozen real FSDD digits (absolute audio paths)."""
    rows = [json.loads(line) for line in (SHARED_DATA / "fsdd" / "manifest.jsonl").read_text().splitlines()]
    by_digit: dict[str, list[dict]] = {}
    for r in rows:
        by_digit.setdefault(r["text"], []).append(r)
    train = [r for d in sorted(by_digit) for r in by_digit[d][:4]]
    dev = [r for d in sorted(by_digit) for r in by_digit[d][4:5]]
    out = tmp_path_factory.mktemp("fsdd_tiny")
    return {"train": write_fsdd_manifest(out / "train.jsonl", train), "dev": write_fsdd_manifest(out / "dev.jsonl", dev)}

