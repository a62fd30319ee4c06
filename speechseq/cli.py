"""``speechseq <command> [args]``: dispatches to ``speechseq.bin.<command>.main`` (each a thin library wrapper)."""

from __future__ import annotations

import importlib
import sys

from speechseq.bin import run

COMMANDS = {
    "prepare": "prepare corpus manifests (synth_en, fsdd, librispeech, aishell)",
    "tokenizer": "train a SentencePiece tokenizer on a manifest",
    "lm": "estimate a token n-gram LM (ARPA) for beam-search fusion",
    "train": "train an ASR model (torchrun for data parallel)",
    "decode": "transcribe a manifest, report WER and RTF",
    "score": "WER/CER of hypotheses, or a table of decode summaries",
    "align": "CTC forced alignment with word times",
    "pseudolabel": "a manifest of unlabelled audio transcribed by agreeing decodes (self-training)",
    "average": "average the last N checkpoints",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: speechseq <command> [args]\n\ncommands:")
        for name, text in COMMANDS.items():
            print(f"  {name:<10} {text}")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"speechseq: unknown command {name!r} (choices: {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    module = importlib.import_module(f"speechseq.bin.{name}")
    return run(module.main, rest)


if __name__ == "__main__":
    raise SystemExit(main())
