"""ASR training throughput in seconds of audio per second: forward + backward + gradient clipping + AdamW step.

    python benchmarks/bench_train.py                       # CPU, 2 threads, fp32, tiny and ~30M configs
    python benchmarks/bench_train.py --quick               # a few seconds: smoke run, numbers not meaningful
    python benchmarks/bench_train.py --device cuda --max-duration-s 600 --steps 10    # GPU: fp32 and bf16 autocast

Models are built from the recipe configs, exactly as trained (SpecAugment, dropout, intermediate CTC and
self-conditioning as configured): ``tiny`` = recipes/conf/asr/ctc_synth_tiny.yaml (vocabulary 128), ``small`` =
recipes/conf/asr/ctc_synth_small.yaml (vocabulary 256) and ``30M`` =
recipes/conf/asr/ctc_librispeech_30m.yaml (vocabulary 1024), random initial weights. Batches are real speech: the
utterances of ../shared/data/mfa_samples (or ``--manifest``), bucketed by DurationBucketSampler with
``--max-duration-s`` of padded audio per batch (utterances longer than that are left out), taking the fullest
batches of the plan. Transcripts become token
ids by a fixed character -> id map (a stand-in for the BPE model: the loss's cost barely depends on it). Batches are
loaded and collated before timing, so the numbers are the model's, not the data loader's.

Each round runs one step of every candidate (config x precision) on the same batch, so load changes hit all alike;
the first ``--warmup`` rounds are not timed. audio-s/s = valid audio seconds of the timed batches / their total step
time; "step s" is the median step time. Each config runs in fp32 and, with ``--device cuda``, under bf16 autocast
(features stay fp32), and so on a CPU with native bf16 instructions (AVX512-BF16 / AMX); ``--precisions`` picks.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path
from typing import Callable

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import (REPO_ROOT, SHARED_DATA, count_params, markdown_table, print_header, set_threads,  # noqa: E402
                    time_interleaved)
from speechseq.asr.model import build_asr_model  # noqa: E402
from speechseq.config import load_config  # noqa: E402
from speechseq.data.dataset import AsrDataset, Batch, collate_asr  # noqa: E402
from speechseq.data.manifest import read_manifest  # noqa: E402
from speechseq.data.sampler import DurationBucketSampler, utterance_durations  # noqa: E402
from speechseq.train.asr import AsrExperimentConfig  # noqa: E402
from speechseq.train.loop import bf16_native, param_groups  # noqa: E402

CONFIGS = {
    "tiny": REPO_ROOT / "recipes" / "conf" / "asr" / "ctc_synth_tiny.yaml",
    "small": REPO_ROOT / "recipes" / "conf" / "asr" / "ctc_synth_small.yaml",
    "30M": REPO_ROOT / "recipes" / "conf" / "asr" / "ctc_librispeech_30m.yaml",
}
DEFAULT_MANIFEST = SHARED_DATA / "mfa_samples" / "manifest.jsonl"


def char_encoder(vocab_size: int) -> Callable[[str], list[int]]:
    """text -> ids in [1, vocab_size): each character's code point folded onto the non-blank ids."""
    return lambda text: [1 + ord(c) % (vocab_size - 1) for c in text]


def load_batches(manifests: list[Path], max_duration_s: float, num_batches: int, vocab_size: int,
                 sample_rate: int, seed: int) -> list[Batch]:
    """The ``num_batches`` fullest batches (largest padded size) of a bucketed plan, loaded and collated.

    A small benchmark set leaves many part-filled batches at bucket edges; a large training set has few, so the
    fullest batches are the representative ones. Fewer batches than asked are cycled.

    Raises:
        SystemExit: no utterance fits in ``max_duration_s``.
    """
    utts = [u for m in manifests for u in read_manifest(m)]
    durations = utterance_durations(utts)
    kept = [(u, d) for u, d in zip(utts, durations) if d <= max_duration_s]
    if not kept:
        raise SystemExit(f"no utterance of {', '.join(map(str, manifests))} is <= --max-duration-s {max_duration_s}")
    utts, durations = [u for u, _ in kept], [d for _, d in kept]
    sampler = DurationBucketSampler(durations, max_duration_s, num_buckets=min(10, len(utts)), seed=seed)
    dataset = AsrDataset(utts, sample_rate, char_encoder(vocab_size))
    fullest = sorted(sampler.plan(), key=lambda b: -max(durations[i] for i in b) * len(b))
    plan = list(itertools.islice(itertools.cycle(fullest), num_batches))
    return [collate_asr([dataset[i] for i in indices]) for indices in plan]


def make_step(model: nn.Module, optimizer: torch.optim.Optimizer, batches: list[Batch],
              dtype: torch.dtype | None, device: torch.device) -> Callable[[], object]:
    """A callable running one training step on the next batch (cycling through ``batches``)."""
    order = itertools.cycle(batches)

    def step() -> object:
        batch = next(order)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            out = model(batch.waves, batch.wave_lens, batch.tokens, batch.token_lens)
        out.loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return out.loss

    return step


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op CPU threads")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--precisions", default="",
                        help="comma-separated subset of fp32,bf16 (default: fp32,bf16 on CUDA and on CPUs with native "
                             "bf16 instructions, else fp32)")
    parser.add_argument("--configs", default="tiny,30M", help="comma-separated subset of tiny,small,30M")
    parser.add_argument("--manifest", type=Path, action="append",
                        help="manifest(s) of real speech (repeatable; default ../shared/data/mfa_samples)")
    parser.add_argument("--max-duration-s", type=float, default=30.0, help="padded seconds of audio per batch")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per candidate")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per candidate first")
    parser.add_argument("--seed", type=int, default=0, help="weight initialisation and batch plan seed")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 4 s batches, 1 step, no warm-up (throughput is not meaningful)")
    args = parser.parse_args(argv)
    if args.quick:
        args.max_duration_s, args.steps, args.warmup = 4.0, 1, 0
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    if not names or any(n not in CONFIGS for n in names):
        parser.error(f"--configs: choose from {', '.join(CONFIGS)}, got {args.configs!r}")
    if args.steps < 1 or args.warmup < 0 or not args.max_duration_s > 0:
        parser.error("--steps must be >= 1, --warmup >= 0 and --max-duration-s > 0")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    known: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}
    labels = [x.strip() for x in args.precisions.split(",") if x.strip()] or (
        ["fp32", "bf16"] if bf16_native(device) else ["fp32"])
    if any(x not in known for x in labels):
        parser.error(f"--precisions: choose from fp32,bf16, got {args.precisions!r}")
    dtypes = {x: known[x] for x in labels}

    set_threads(args.threads)
    print_header(f"ASR training throughput ({device.type})", {
        "max_duration_s": args.max_duration_s, "steps": args.steps, "warmup": args.warmup,
        "precisions": ",".join(dtypes), "quick": args.quick})
    if device.type == "cuda":
        print(f"device: {torch.cuda.get_device_name(device)}")
    manifests = args.manifest or [DEFAULT_MANIFEST]

    candidates: dict[tuple[str, str], Callable[[], object]] = {}
    info: dict[str, tuple[int, int, list[Batch]]] = {}
    for name in names:
        cfg = load_config(CONFIGS[name], AsrExperimentConfig)
        torch.manual_seed(args.seed)
        model = build_asr_model(cfg.model, cfg.tokenizer.vocab_size)
        sample_rate = model.frontend.sample_rate
        batches = load_batches(manifests, args.max_duration_s, args.warmup + args.steps, cfg.tokenizer.vocab_size,
                               sample_rate, args.seed)
        with torch.no_grad():  # realistic feature scale: global mean/variance from the first batch
            model.frontend.set_stats(*model.frontend.raw_features(batches[0].waves, batches[0].wave_lens))
        model.to(device).train()
        batches = [b.to(device) for b in batches]
        optimizer = torch.optim.AdamW(param_groups(model, cfg.train.weight_decay), lr=1e-4, betas=(0.9, 0.98))
        info[name] = (count_params(model), sample_rate, batches)
        for label, dtype in dtypes.items():
            candidates[(name, label)] = make_step(model, optimizer, batches, dtype, device)

    sync = torch.cuda.synchronize if device.type == "cuda" else None
    timings = time_interleaved({f"{n} {d}": fn for (n, d), fn in candidates.items()}, args.steps, args.warmup, sync)

    rows = []
    for (name, label), timing in zip(candidates, timings.values()):
        params, sample_rate, batches = info[name]
        timed = [batches[(args.warmup + i) % len(batches)] for i in range(args.steps)]
        audio_s = [float(b.wave_lens.sum()) / sample_rate for b in timed]
        padded_s = [b.waves.numel() / sample_rate for b in timed]
        rows.append([name, params / 1e6, label, sum(len(b) for b in timed) / len(timed),
                     sum(audio_s) / len(timed), sum(padded_s) / len(timed), timing.median_s,
                     sum(audio_s) / sum(timing.runs_s)])
    print()
    print(markdown_table(["config", "params M", "precision", "utts/batch", "batch audio s", "batch padded s",
                          "step s", "audio-s/s"], rows, digits=2))


if __name__ == "__main__":
    main()
