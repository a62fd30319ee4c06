"""Checkpoints: atomic writes, exact-resume payloads, averaging.

A training checkpoint (``exp/checkpoints/step_000500.pt``) holds the model ``state_dict``, optimizer, scheduler,
grad-scaler and sampler state, every RNG state, the step/epoch counters, the resolved config and the tokenizer's
SHA-256. It is written to a temporary file in the same folder, flushed and fsynced, then renamed over the target, so
an interrupted write never leaves a truncated checkpoint (and never touches the previous one).
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from speechseq.errors import SpeechseqError

STEP_RE = re.compile(r"step_(\d+)\.pt$")


def atomic_save(obj: Any, path: str | Path) -> None:
    """torch.save to ``path`` via a temporary file + fsync + rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint; a missing or corrupt file raises SpeechseqError naming it."""
    path = Path(path)
    if not path.exists():
        raise SpeechseqError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for a truncated/corrupt file
        raise SpeechseqError(f"{path}: unreadable checkpoint ({type(e).__name__}: {e})") from None


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def list_checkpoints(ckpt_dir: str | Path, after_step: int = -1) -> list[Path]:
    """``step_*.pt`` files in step order, those of steps greater than ``after_step`` only."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in ckpt_dir.iterdir() if (m := STEP_RE.search(p.name))]
    return [p for n, p in sorted(found) if n > after_step]


def prune(ckpt_dir: str | Path, keep: int) -> None:
    """Delete all but the newest ``keep`` step checkpoints (keep <= 0 keeps everything)."""
    if keep <= 0:
        return
    for p in list_checkpoints(ckpt_dir)[:-keep]:
        p.unlink(missing_ok=True)


def _averaging_key(state: dict) -> dict:
    """What checkpoints must share to be averaged: parameter names and shapes, and the tokenizer. (Not the model
    config: a run resumed with, say, another dropout is allowed, and its checkpoints average fine.)"""
    return {"shapes": {k: tuple(v.shape) for k, v in state["model"].items()},
            "tokenizer_sha256": state.get("tokenizer_sha256")}


def _check_averageable(key: dict, ref: dict, path: Path, ref_path: Path) -> None:
    """Raise naming ``path`` when its ``_averaging_key`` differs from ``ref_path``'s."""
    where = f"{path}: cannot average with {ref_path}"
    if key["shapes"].keys() != ref["shapes"].keys():
        diff = sorted(key["shapes"].keys() ^ ref["shapes"].keys())
        raise SpeechseqError(f"{where}: other parameter names ({len(diff)} differ, e.g. {diff[:3]})")
    for name, shape in key["shapes"].items():
        if shape != ref["shapes"][name]:
            raise SpeechseqError(f"{where}: {name} has shape {shape}, not {ref['shapes'][name]}")
    if key["tokenizer_sha256"] != ref["tokenizer_sha256"]:
        raise SpeechseqError(f"{where}: written with another tokenizer")


def average_state_dicts(paths: list[Path]) -> dict[str, torch.Tensor]:
    """Element-wise mean of the ``model`` state_dicts in ``paths`` (integer buffers are taken from the last).

    Every checkpoint must have the first's parameter names and shapes and tokenizer SHA-256;
    otherwise SpeechseqError names the one that differs."""
    if not paths:
        raise SpeechseqError("average_state_dicts: no checkpoints to average")
    total: dict[str, torch.Tensor] = {}
    last: dict[str, torch.Tensor] = {}
    ref = None
    for p in paths:
        state = load(p)
        key = _averaging_key(state)
        if ref is None:
            ref = key
        else:
            _check_averageable(key, ref, Path(p), Path(paths[0]))
        last = state["model"]
        for k, v in last.items():
            if v.is_floating_point():
                total[k] = total[k] + v.double() if k in total else v.double().clone()
    return {k: (total[k] / len(paths)).to(v.dtype) if v.is_floating_point() else v.clone() for k, v in last.items()}
