"""speechseq average: average the last N step checkpoints of an experiment into its model.pt.

    python -m speechseq.bin.average --exp exp/ctc_tiny --last 5
"""

from __future__ import annotations

import argparse
from pathlib import Path

from speechseq.errors import SpeechseqError
from speechseq.train import checkpoint as ckpt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="speechseq average", description=__doc__.splitlines()[0])
    p.add_argument("--exp", required=True)
    p.add_argument("--last", type=int, default=5)
    p.add_argument("--out", help="default: EXP/model.pt")
    args = p.parse_args(argv)
    paths = ckpt.list_checkpoints(Path(args.exp) / "checkpoints")[-args.last:]
    if not paths:
        raise SpeechseqError(f"{args.exp}/checkpoints: no step_*.pt checkpoints")
    newest = ckpt.load(paths[-1])
    meta = {k: newest[k] for k in ("config", "tokenizer_sha256") if k in newest}
    out = Path(args.out or Path(args.exp) / "model.pt")
    ckpt.atomic_save({"model": ckpt.average_state_dicts(paths), "averaged": [p.name for p in paths],
                      "step": newest["step"], **meta}, out)
    print(f"averaged {[p.name for p in paths]} -> {out}")
    return 0


if __name__ == "__main__":
    from speechseq.bin import run

    raise SystemExit(run(main))
