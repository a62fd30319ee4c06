"""speechseq train: train an ASR model into an experiment folder (resumes when it holds checkpoints).

    python -m speechseq.bin.train --config recipes/conf/asr/ctc_tiny.yaml --exp exp/ctc_tiny \
        --train data/train.jsonl --dev data/dev.jsonl train.max_steps=500
    torchrun --nproc_per_node 2 -m speechseq.bin.train ...   # data parallel
    python -m speechseq.bin.train --init exp/paraformer --exp exp/paraformer_mwer ... model.paraformer.mwer_weight=0.1
                                                        # fine-tune (e.g. MWER) from a trained model directory
"""

from __future__ import annotations

import argparse
import logging
import sys

from speechseq.config import dump_config, load_config
from speechseq.train.asr import AsrExperimentConfig, train_asr


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="speechseq train", description=__doc__.splitlines()[0])
    p.add_argument("--config", help="experiment YAML (AsrExperimentConfig)")
    p.add_argument("--exp", help="experiment / model directory")
    p.add_argument("--train", help="training manifest (JSONL)")
    p.add_argument("--dev", help="validation manifest (JSONL)")
    p.add_argument("--tokenizer", help="existing tokenizer.model (default: train one on the transcripts)")
    p.add_argument("--init", help="start from this trained model directory's weights and tokenizer (fine-tuning)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("overrides", nargs="*", help="key.path=value overrides, e.g. train.max_steps=100")
    args = p.parse_args(argv)
    cfg = load_config(args.config, AsrExperimentConfig, args.overrides)
    if args.print_config:
        sys.stdout.write(dump_config(cfg))
        return 0
    if not args.exp or not args.train:
        p.error("--exp and --train are required")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = train_asr(cfg, args.exp, args.train, args.dev, args.tokenizer, args.device, init_from=args.init)
    print(f"trained {result.steps} steps -> {result.model_path} {result.metrics}")
    return 0


if __name__ == "__main__":
    from speechseq.bin import run

    raise SystemExit(run(main))
