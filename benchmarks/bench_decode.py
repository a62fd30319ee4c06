"""Offline CTC decoding real-time factor (RTF) on the CPU, end to end from waveform tensor to token ids.

    python benchmarks/bench_decode.py                    # 2 threads, 10 s of real speech, median of 7 runs
    python benchmarks/bench_decode.py --quick            # a few seconds: smoke run, numbers not meaningful
    python benchmarks/bench_decode.py --compile          # also time torch.inference_mode and torch.compile paths

RTF = wall time of ``model.recognize(waves, wave_lens, method)`` / seconds of audio decoded: fbank, normalisation,
encoder, CTC head and the search (greedy, or CTC prefix beam search) are all included. Models have random weights
(the network's cost does not depend on training; see the beam-search caveat below) and are built from:

* ``tiny``: recipes/conf/asr/ctc_synth_tiny.yaml with its 128-token vocabulary;
* ``34M``: conformer-CTC the size of ESPnet's LibriSpeech conformer encoder (d_model 256, 12 layers, 4 heads,
  feed-forward 2048, kernel 31, conv2d subsampling x4) with a 5000-token CTC head: 34.8M parameters;
* ``48M``: the same block shape with 17 layers (48.0M with the 5000-token head), the parameter count of WeNet's
  U2++ conformer; our model is encoder + CTC only, so the 48M are spent on 5 more encoder layers instead of an
  attention decoder.

The audio is real speech: the recordings of ../shared/data/mfa_samples concatenated (or ``--audio FILE`` tiled),
cut into ``--duration-s`` windows; the single-utterance rows decode window 0, the batched rows decode windows
0..batch-1 (all the same length, no padding) in one call, RTF = time / (batch x duration). Candidates take turns
call by call so load changes hit all alike; the table gives the median (and the fastest) run. The references
(``--ref-espnet-34m``, ``--ref-wenet-48m``) were measured by the project on this kind of machine, 2 threads, 10 s
of audio; "x ref" > 1 means slower than the reference.

Caveat: prefix beam search skips frames whose blank probability exceeds 0.999. Random weights give flat posteriors,
so no frame is skipped and every frame expands the full beam: the beam rows are an upper bound for a trained model.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import (REPO_ROOT, SHARED_DATA, count_params, markdown_table, print_header, set_threads,  # noqa: E402
                    time_interleaved)
from speechseq.asr.conformer import ConformerConfig  # noqa: E402
from speechseq.asr.ctc import greedy_decode  # noqa: E402
from speechseq.asr.model import AsrModelConfig, build_asr_model  # noqa: E402
from speechseq.audio.io import load_audio  # noqa: E402
from speechseq.config import load_config  # noqa: E402
from speechseq.data.manifest import read_manifest  # noqa: E402
from speechseq.train.asr import AsrExperimentConfig  # noqa: E402

SAMPLE_RATE = 16000
TINY_CONFIG = REPO_ROOT / "recipes" / "conf" / "asr" / "ctc_synth_tiny.yaml"
SPEECH_MANIFEST = SHARED_DATA / "mfa_samples" / "manifest.jsonl"


@dataclass
class ModelSpec:
    """A benchmarked model: its config, vocabulary and the published reference it is compared with."""

    name: str
    model: AsrModelConfig
    vocab_size: int
    reference: str = ""
    reference_rtf: float = float("nan")
    reference_methods: tuple[str, ...] = ()


def reference_encoder(num_layers: int) -> ConformerConfig:
    """ESPnet/WeNet LibriSpeech conformer block shape: d_model 256, 4 heads, FF 2048, kernel 31, conv2d x4."""
    return ConformerConfig(num_features=80, d_model=256, num_layers=num_layers, num_heads=4, ff_expansion=8,
                           conv_kernel=31, subsampling="conv2d", subsampling_factor=4)


def model_specs(ref_espnet_34m: float, ref_wenet_48m: float) -> dict[str, ModelSpec]:
    """name -> spec of every model this benchmark knows (``--models`` picks among them)."""
    tiny = load_config(TINY_CONFIG, AsrExperimentConfig)
    return {
        "tiny": ModelSpec("tiny", tiny.model, tiny.tokenizer.vocab_size),
        "34M": ModelSpec("34M", AsrModelConfig(encoder=reference_encoder(12)), 5000,
                         "ESPnet 34M CTC greedy", ref_espnet_34m, ("greedy",)),
        "48M": ModelSpec("48M", AsrModelConfig(encoder=reference_encoder(17)), 5000,
                         "WeNet 48M U2++", ref_wenet_48m, ("greedy", "beam")),
    }


def shape_text(spec: ModelSpec) -> str:
    enc = spec.model.encoder
    return (f"d{enc.d_model} L{enc.num_layers} H{enc.num_heads} ff{enc.d_model * enc.ff_expansion} "
            f"k{enc.conv_kernel} {enc.subsampling} V{spec.vocab_size}")


def speech_pool(audio: Path | None, min_samples: int) -> tuple[np.ndarray, str]:
    """At least ``min_samples`` of real speech at 16 kHz: mfa_samples concatenated in id order, or a file tiled.

    Returns:
        (N,) float32 samples and a description of the source.
    """
    if audio is not None:
        wave, _ = load_audio(audio, sample_rate=SAMPLE_RATE)
        source = str(audio)
    else:
        utts = sorted(read_manifest(SPEECH_MANIFEST), key=lambda u: u.id)
        wave = np.concatenate([load_audio(u.audio, sample_rate=SAMPLE_RATE)[0] for u in utts])
        source = f"{SPEECH_MANIFEST.parent.name} ({len(utts)} recordings concatenated)"
    if wave.size < min_samples:
        source += f", tiled x{min_samples / wave.size:.1f}"
        wave = np.resize(wave, min_samples)
    return wave.astype(np.float32), source


def windows(pool: np.ndarray, count: int, num_samples: int) -> tuple[Tensor, Tensor]:
    """``count`` consecutive windows of ``num_samples``: waves (count, num_samples), wave_lens (count,) int64."""
    waves = torch.from_numpy(pool[: count * num_samples].copy()).reshape(count, num_samples)
    return waves, torch.full((count,), num_samples, dtype=torch.int64)


def build_model(spec: ModelSpec, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return build_asr_model(spec.model, spec.vocab_size).eval()


def candidates_for(spec: ModelSpec, model: nn.Module, one: tuple[Tensor, Tensor], batch: tuple[Tensor, Tensor],
                   beam_size: int, try_compile: bool) -> dict[tuple[str, str, int], Callable[[], object]]:
    """(model name, decoding label, utterances) -> callable decoding them end to end."""
    out: dict[tuple[str, str, int], Callable[[], object]] = {
        (spec.name, "greedy", 1): lambda: model.recognize(*one, "greedy"),
        (spec.name, f"beam{beam_size}", 1): lambda: model.recognize(*one, "beam", beam_size),
        (spec.name, "greedy", len(batch[0])): lambda: model.recognize(*batch, "greedy"),
    }
    if try_compile:
        def inference_mode() -> object:
            with torch.inference_mode():
                return model.recognize(*one, "greedy")

        out[(spec.name, "greedy inference_mode", 1)] = inference_mode
        compiled = torch.compile(model, dynamic=False)

        def compiled_greedy() -> object:
            with torch.inference_mode():
                result = compiled(*one)
                return greedy_decode(result.log_probs, result.lens)

        out[(spec.name, "greedy torch.compile", 1)] = compiled_greedy
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op CPU threads")
    parser.add_argument("--audio", type=Path, default=None, help="speech file to decode (default: mfa_samples)")
    parser.add_argument("--duration-s", type=float, default=10.0, help="seconds per utterance")
    parser.add_argument("--batch-size", type=int, default=8, help="utterances of the batched rows")
    parser.add_argument("--beam-size", type=int, default=10, help="prefix beam search width")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per candidate (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per candidate first")
    parser.add_argument("--models", default="tiny,34M,48M", help="comma-separated subset of tiny,34M,48M")
    parser.add_argument("--ref-espnet-34m", type=float, default=0.031, help="reference RTF: ESPnet 34M CTC greedy")
    parser.add_argument("--ref-wenet-48m", type=float, default=0.039, help="reference RTF: WeNet 48M U2++")
    parser.add_argument("--compile", action="store_true",
                        help="also time greedy under torch.inference_mode and with torch.compile (single utterance)")
    parser.add_argument("--seed", type=int, default=0, help="weight initialisation seed")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2 s audio, batch 2, 1 run, no warm-up (RTFs are not meaningful)")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration_s, args.batch_size, args.repeat, args.warmup = 2.0, 2, 1, 0
    if args.compile:
        args.warmup = max(args.warmup, 1)  # the first call compiles: never time it

    specs = model_specs(args.ref_espnet_34m, args.ref_wenet_48m)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in specs]
    if unknown or not names:
        parser.error(f"--models: unknown {unknown} (choices: {', '.join(specs)})")
    if args.batch_size < 1 or args.beam_size < 1 or args.duration_s <= 0:
        parser.error("--batch-size and --beam-size must be >= 1 and --duration-s > 0")

    set_threads(args.threads)
    num_samples = int(round(args.duration_s * SAMPLE_RATE))
    pool, source = speech_pool(args.audio, args.batch_size * num_samples)
    print_header("CTC decoding real-time factor (CPU)", {
        "audio_s": args.duration_s, "batch": args.batch_size, "beam": args.beam_size, "repeat": args.repeat,
        "warmup": args.warmup, "compile": args.compile, "quick": args.quick})
    print(f"audio: {source}, {args.duration_s:g} s windows at {SAMPLE_RATE} Hz")
    one, batch = windows(pool, 1, num_samples), windows(pool, args.batch_size, num_samples)

    candidates: dict[tuple[str, str, int], Callable[[], object]] = {}
    params: dict[str, int] = {}
    for name in names:
        model = build_model(specs[name], args.seed)
        params[name] = count_params(model)
        candidates.update(candidates_for(specs[name], model, one, batch, args.beam_size, args.compile))
    if args.compile:
        print("torch.compile: the warm-up call compiles (minutes on 2 cores); compile time is not in the table")
    with torch.no_grad():
        timings = time_interleaved({" ".join(map(str, k)): fn for k, fn in candidates.items()}, args.repeat,
                                   args.warmup)

    rows = []
    for (name, method, utts), timing in zip(candidates, timings.values()):
        spec = specs[name]
        audio_s = utts * args.duration_s
        rtf = timing.median_s / audio_s
        compared = utts == 1 and method.split()[0].rstrip("0123456789") in spec.reference_methods
        rows.append([name, params[name] / 1e6, shape_text(spec), method, utts, rtf, timing.min_s / audio_s,
                     spec.reference if compared else "", spec.reference_rtf if compared else float("nan"),
                     rtf / spec.reference_rtf if compared else float("nan")])
    print()
    print(markdown_table(["model", "params M", "shape", "decoding", "utts", "RTF median", "RTF min", "reference",
                          "ref RTF", "x ref"], rows))


if __name__ == "__main__":
    main()
