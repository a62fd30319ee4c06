"""Padding waste of DurationBucketSampler vs random batching, on real manifests and on synthetic durations.

    python benchmarks/bench_sampler.py
    python benchmarks/bench_sampler.py --manifest data/train.jsonl --max-duration-s 200 --num-buckets 30

Padding fraction = 1 - sum(durations) / sum(max_dur_in_batch * len(batch)): the share of the padded batch tensors
that is zeros. Both plans obey the same limit ``max_dur_in_batch * len(batch) <= max_duration_s``. Numbers are the
mean over ``--epochs`` epochs (different shuffles). CPU only, a few seconds.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from speechseq.data.manifest import read_manifest
from speechseq.data.sampler import DurationBucketSampler, padding_fraction, random_batches, utterance_durations

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DEFAULT_MANIFESTS = [SHARED_DATA / name / "manifest.jsonl" for name in ("an4_mini", "mfa_samples", "fsdd")]


def compare(name: str, durations: list[float], max_duration_s: float, num_buckets: int, epochs: int) -> None:
    bucketed, randomised, num_batches = [], [], []
    start = time.perf_counter()
    sampler = DurationBucketSampler(durations, max_duration_s, num_buckets=num_buckets)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        bucketed.append(sampler.padding_fraction)
        num_batches.append(len(sampler))
    plan_ms = (time.perf_counter() - start) / epochs * 1e3
    for epoch in range(epochs):
        randomised.append(padding_fraction(random_batches(durations, max_duration_s, seed=epoch), durations))
    b, r = float(np.mean(bucketed)), float(np.mean(randomised))
    print(
        f"{name:<34} {len(durations):>8} {sum(durations) / 3600:>7.2f} {np.mean(num_batches):>8.1f} "
        f"{b:>9.4f} {r:>9.4f} {r / b if b > 0 else float('inf'):>7.1f}x {plan_ms:>8.1f}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", action="append", type=Path, help="manifest(s) to concatenate (repeatable); "
                        "default: ../shared/data/{an4_mini,mfa_samples,fsdd}/manifest.jsonl")
    parser.add_argument("--max-duration-s", type=float, default=60.0, help="padded seconds per batch")
    parser.add_argument("--num-buckets", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=5, help="epochs (shuffles) averaged")
    parser.add_argument("--synthetic", type=int, default=500, help="lognormal utterances (median 5 s, sigma 0.5)")
    parser.add_argument("--synthetic-large", type=int, default=100_000, help="second synthetic set, for plan time")
    args = parser.parse_args(argv)

    load1, load5, load15 = os.getloadavg()
    print(f"load average: {load1:.2f} {load5:.2f} {load15:.2f} ({os.cpu_count()} CPUs)")
    print(f"max_duration_s={args.max_duration_s} num_buckets={args.num_buckets} epochs={args.epochs}\n")
    print(f"{'set':<34} {'utts':>8} {'hours':>7} {'batches':>8} {'bucketed':>9} {'random':>9} {'ratio':>8} "
          f"{'plan ms':>8}")

    manifests = args.manifest or DEFAULT_MANIFESTS
    utts = [u for path in manifests for u in read_manifest(path)]
    label = "+".join(p.parent.name if p.name.startswith("manifest") else p.stem for p in manifests)
    compare(label[:34], utterance_durations(utts), args.max_duration_s, args.num_buckets, args.epochs)
    rng = np.random.default_rng(0)
    for n in (args.synthetic, args.synthetic_large):
        if n > 0:
            durations = rng.lognormal(np.log(5.0), 0.5, n).tolist()
            compare("lognormal(median 5 s, sigma 0.5)", durations, args.max_duration_s, args.num_buckets, args.epochs)
    print("\npadding fraction: share of padded batch samples that are zeros (lower is better); "
          "ratio = random / bucketed")


if __name__ == "__main__":
    main()
