"""speechseq tokenizer: train a SentencePiece tokenizer on a manifest's transcripts.

    python -m speechseq.bin.tokenizer --manifest data/train.jsonl --out exp/tok --model-type bpe --vocab-size 256
"""

from __future__ import annotations

import argparse

from speechseq.data.manifest import iter_manifest
from speechseq.text.tokenizer import TokenizerConfig, train_tokenizer


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="speechseq tokenizer", description=__doc__.splitlines()[0])
    p.add_argument("--manifest", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--model-type", default="bpe", choices=["bpe", "unigram", "char"])
    p.add_argument("--vocab-size", type=int, default=256)
    p.add_argument("--character-coverage", type=float, default=1.0,
                   help="share of characters the pieces cover (1.0 for small alphabets, 0.9995 for CJK)")
    args = p.parse_args(argv)
    tok = train_tokenizer((u.text for u in iter_manifest(args.manifest)), args.out,
                          TokenizerConfig(args.model_type, args.vocab_size,
                                          character_coverage=args.character_coverage))
    print(f"{tok.model_path}: {tok.vocab_size} pieces")
    return 0


if __name__ == "__main__":
    from speechseq.bin import run

    raise SystemExit(run(main))
