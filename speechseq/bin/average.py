"""speechseq average: average the last N step checkpoints of an experiment into its model.pt.

    python -m speechseq.bin.average --exp exp/ctc_tiny --last 5

With warm restarts (``train.cycles`` > 1) only the checkpoints of the last cycle count, as in training's own final
average: the weights from before a restart belong to another cosine cycle.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from speechseq.config import from_dict
from speechseq.errors import SpeechseqError
from speechseq.train import checkpoint as ckpt
from speechseq.train.loop import TrainConfig, cycle_begin


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="speechseq average", description=__doc__.splitlines()[0])
    p.add_argument("--exp", required=True)
    p.add_argument("--last", type=int, default=5)
    p.add_argument("--out", help="default: EXP/model.pt")
    args = p.parse_args(argv)
    if args.last < 1:
        raise SpeechseqError(f"--last {args.last}: must be at least 1")
    ckpt_dir = Path(args.exp) / "checkpoints"
    found = ckpt.list_checkpoints(ckpt_dir)
    if not found:
        raise SpeechseqError(f"{ckpt_dir}: no step_*.pt checkpoints")
    newest = ckpt.load(found[-1])
    saved = newest.get("config", {}).get("train", {})  # only the keys that place the restarts (older runs: none)
    train_cfg = from_dict(TrainConfig, {k: saved[k] for k in ("max_steps", "cycles", "schedule") if k in saved},
                          f"{found[-1]}: train")
    paths = ckpt.list_checkpoints(ckpt_dir, after_step=cycle_begin(train_cfg, newest["step"]))[-args.last:]
    meta = {k: newest[k] for k in ("config", "tokenizer_sha256") if k in newest}
    out = Path(args.out or Path(args.exp) / "model.pt")
    ckpt.atomic_save({"model": ckpt.average_state_dicts(paths), "averaged": [p.name for p in paths],
                      "step": newest["step"], **meta}, out)
    print(f"averaged {[p.name for p in paths]} -> {out}")
    return 0


if __name__ == "__main__":
    from speechseq.bin import run

    raise SystemExit(run(main))
