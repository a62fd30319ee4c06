"""Time speechseq's fbank against a plain torch.stft log-mel, librosa and kaldi-native-fbank on the CPU.

    python benchmarks/bench_fbank.py [--threads 2] [--repeat 50] [--path some.wav]

All four run in one process on the same 10 s of 16 kHz audio (a real recording tiled to 10 s), 80 mel bins,
25 ms / 10 ms frames. The table gives the median wall time per call and its ratio to speechseq (> 1 = slower than
speechseq); the candidates take turns call by call, so a load spike
slows them alike. A second table gives batched throughput for 16 utterances of 10 s (speechseq and torch.stft in one
batched call, librosa and kaldi-native-fbank in a loop). The 1-minute load average is printed first: other jobs on the
machine make every number noisier and slower.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from speechseq.audio.functional import fbank, frame_window, mel_filterbank  # noqa: E402
from speechseq.audio.io import load_audio  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DEFAULT_PATH = SHARED_DATA / "an4_mini" / "audio" / "an4_an146-fclc-b.wav"
SAMPLE_RATE, DURATION_S, N_MELS, BATCH = 16000, 10.0, 80, 16


def median_ms(candidates: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median wall time per candidate, in ms; candidates take turns so load changes hit all of them alike."""
    for fn in candidates.values():
        fn()  # warm up (allocator, FFT plans, lazy imports)
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeat):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: 1000.0 * statistics.median(t) for name, t in times.items()}


def build_candidates(wave: np.ndarray) -> dict[str, Callable[[np.ndarray], object]]:
    """name -> function of a (N,) float32 array, each returning (T, 80) log-mel."""
    mel = mel_filterbank(512, N_MELS, SAMPLE_RATE, 20.0, 0.0)
    window = frame_window("povey", 400)
    hann = torch.hann_window(400)

    def speechseq_fn(x: np.ndarray) -> object:
        return fbank(torch.from_numpy(x), mel_matrix=mel, window_tensor=window)[0]

    def stft_fn(x: np.ndarray) -> object:
        spec = torch.stft(torch.from_numpy(x), 512, 160, 400, hann, center=False, return_complex=True)
        return torch.matmul(spec.abs().square().transpose(-1, -2), mel).clamp_min(1e-7).log()

    candidates = {"speechseq fbank": speechseq_fn, "torch.stft log-mel": stft_fn}
    try:
        import librosa

        def librosa_fn(x: np.ndarray) -> object:
            power = librosa.feature.melspectrogram(y=x, sr=SAMPLE_RATE, n_fft=512, hop_length=160, win_length=400,
                                                   center=False, n_mels=N_MELS, fmin=20.0, htk=True)
            return np.log(np.maximum(power, 1e-7)).T

        candidates["librosa"] = librosa_fn
    except ImportError:
        print("librosa not installed: skipped")
    try:
        import kaldi_native_fbank as knf

        opts = knf.FbankOptions()
        opts.frame_opts.dither = 0.0
        opts.mel_opts.num_bins = N_MELS

        def knf_fn(x: np.ndarray) -> object:
            computer = knf.OnlineFbank(opts)
            computer.accept_waveform(SAMPLE_RATE, x * 32768.0)
            computer.input_finished()
            return np.stack([computer.get_frame(i) for i in range(computer.num_frames_ready)])

        candidates["kaldi-native-fbank"] = knf_fn
    except ImportError:
        print("kaldi-native-fbank not installed: skipped")
    return candidates


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--repeat", type=int, default=50, help="timed calls per candidate (median reported)")
    parser.add_argument("--path", type=Path, default=DEFAULT_PATH, help="recording to tile to 10 s")
    args = parser.parse_args(argv)

    load_1m = os.getloadavg()[0]
    print(f"1-minute load average: {load_1m:.2f} on {os.cpu_count()} cores")
    if load_1m > 0.5:
        print("WARNING: load average > 0.5, other jobs are running: timings will be noisy and pessimistic")
    torch.set_num_threads(args.threads)

    recording, _ = load_audio(args.path, sample_rate=SAMPLE_RATE)
    num_samples = int(DURATION_S * SAMPLE_RATE)
    wave = np.resize(recording, num_samples).astype(np.float32)  # tiles the recording to exactly 10 s
    print(f"audio: {args.path.name} tiled to {DURATION_S:g} s at {SAMPLE_RATE} Hz; torch threads={args.threads}, "
          f"repeat={args.repeat}, torch {torch.__version__}")

    candidates = build_candidates(wave)
    single = median_ms({name: (lambda fn=fn: fn(wave)) for name, fn in candidates.items()}, args.repeat)
    base = single["speechseq fbank"]
    print(f"\n{'single 10 s utterance':<24}{'median ms':>10}{'x speechseq':>13}")
    for name, ms in single.items():
        print(f"{name:<24}{ms:>10.2f}{ms / base:>13.2f}")

    rng = np.random.default_rng(0)
    batch = np.stack([np.roll(wave, int(rng.integers(num_samples))) for _ in range(BATCH)])
    batch_t = torch.from_numpy(batch)
    mel, hann = mel_filterbank(512, N_MELS, SAMPLE_RATE, 20.0, 0.0), torch.hann_window(400)

    def stft_batch() -> Tensor:
        spec = torch.stft(batch_t, 512, 160, 400, hann, center=False, return_complex=True)  # (B, 257, T)
        return torch.matmul(spec.abs().square().transpose(-1, -2), mel).clamp_min(1e-7).log()

    batched = {"speechseq fbank": lambda: fbank(batch_t), "torch.stft log-mel": stft_batch}
    for name in ("librosa", "kaldi-native-fbank"):
        if name in candidates:
            batched[name + " (loop)"] = lambda fn=candidates[name]: [fn(row) for row in batch]
    print(f"\n{f'batch of {BATCH} x 10 s':<24}{'median ms':>10}{'ms / utt':>10}{'x realtime':>12}")
    for name, ms in median_ms(batched, max(3, args.repeat // 5)).items():
        print(f"{name:<24}{ms:>10.1f}{ms / BATCH:>10.2f}{BATCH * DURATION_S * 1000 / ms:>12.0f}")


if __name__ == "__main__":
    main()
