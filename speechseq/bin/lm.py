"""speechseq lm: estimate a token n-gram LM (interpolated Kneser-Ney, ARPA) from a manifest's transcripts over a
tokenizer's pieces, for beam-search fusion (``speechseq decode --lm``).

    python -m speechseq.bin.lm --manifest data/train.jsonl --tokenizer exp/tokenizer.model --order 6 --out exp/lm.arpa
"""

from __future__ import annotations

import argparse

from speechseq.data.manifest import iter_manifest
from speechseq.text.ngram import estimate_from_texts, write_arpa
from speechseq.text.tokenizer import Tokenizer


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="speechseq lm", description=__doc__.splitlines()[0])
    p.add_argument("--manifest", required=True, action="append", help="transcripts to learn from (repeatable)")
    p.add_argument("--tokenizer", required=True, help="the ASR model's tokenizer.model")
    p.add_argument("--order", type=int, default=6)
    p.add_argument("--out", required=True, help="ARPA file to write")
    args = p.parse_args(argv)
    texts = [u.text for m in args.manifest for u in iter_manifest(m)]
    lm = estimate_from_texts(texts, Tokenizer(args.tokenizer), args.order)
    write_arpa(lm, args.out)
    counts = [sum(1 for g in lm.probs if len(g) == n) for n in range(1, lm.order + 1)]
    print(f"{args.out}: {lm.order}-gram over {len(texts)} sentences, n-grams per order {counts}")
    return 0


if __name__ == "__main__":
    from speechseq.bin import run

    raise SystemExit(run(main))
