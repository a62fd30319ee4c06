"""Filterbank tests: parity with kaldi-native-fbank and librosa, batching, lengths, module wrapper."""

from pathlib import Path

import kaldi_native_fbank as knf
import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from speechseq.audio.functional import fbank, frame_window, mel_filterbank, num_frames
from speechseq.audio.transforms import Fbank, FbankConfig
from speechseq.errors import ConfigError

AN4 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "an4_mini" / "audio"
AN4_FILES = sorted(AN4.glob("*.wav"))[:3]

# Tolerances actually achieved (max abs diff of log-mel), with margin: see the module docstring of functional.py.
KALDI_TOL = 3e-3  # measured <= 1.2e-3 over all 60 an4_mini files, <= 1.7e-3 over the window/rate variants
LIBROSA_TOL = 1e-3  # measured ~8.5e-5 with librosa's mel matrix
LIBROSA_KALDI_MEL_TOL = 0.05  # measured ~1.5e-2: Kaldi triangles are linear in mel, librosa's in Hz


def _knf_fbank(wave: np.ndarray, sample_rate: int, n_mels: int, **frame_opts) -> np.ndarray:
    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = sample_rate
    opts.frame_opts.dither = 0.0
    opts.frame_opts.snip_edges = True
    for key, value in frame_opts.items():
        setattr(opts.frame_opts, key, value)
    opts.mel_opts.num_bins = n_mels
    computer = knf.OnlineFbank(opts)
    computer.accept_waveform(sample_rate, (wave * 32768.0).astype(np.float32).tolist())
    computer.input_finished()
    return np.stack([computer.get_frame(i) for i in range(computer.num_frames_ready)])


def _chirp(num_samples: int, sample_rate: int, seed: int) -> np.ndarray:
    t = np.arange(num_samples) / sample_rate
    rng = np.random.default_rng(seed)
    wave = 0.3 * np.sin(2 * np.pi * (200 * t + 1500 * t**2)) + 0.01 * rng.standard_normal(num_samples)
    return wave.astype(np.float32)


@pytest.mark.parametrize("path", AN4_FILES, ids=lambda p: p.stem)
def test_fbank_matches_kaldi_native_fbank_on_speech(path):
    wave, sample_rate = sf.read(path, dtype="float32")
    ref = _knf_fbank(wave, sample_rate, 80)
    feats, feat_lens = fbank(torch.from_numpy(wave), sample_rate=sample_rate, n_mels=80)
    assert feats.shape == (1, ref.shape[0], 80) and feats.dtype == torch.float32
    assert feat_lens.tolist() == [ref.shape[0]]
    assert np.abs(feats[0].numpy() - ref).max() < KALDI_TOL


@pytest.mark.parametrize(
    "sample_rate,n_mels,window,length_ms,shift_ms",
    [
        (8000, 23, "hamming", 25.0, 10.0),
        (16000, 40, "hanning", 20.0, 12.5),
        (16000, 80, "sine", 25.0, 10.0),
        (16000, 80, "blackman", 25.0, 10.0),
        (22050, 64, "rectangular", 30.0, 10.0),
    ],
)
def test_fbank_matches_kaldi_native_fbank_options(sample_rate, n_mels, window, length_ms, shift_ms):
    wave = _chirp(int(0.77 * sample_rate), sample_rate, seed=n_mels)
    ref = _knf_fbank(wave, sample_rate, n_mels, window_type=window, frame_length_ms=length_ms, frame_shift_ms=shift_ms)
    feats, _ = fbank(torch.from_numpy(wave), sample_rate=sample_rate, n_mels=n_mels, window=window,
                     frame_length_ms=length_ms, frame_shift_ms=shift_ms)
    assert feats.shape[1] == ref.shape[0]
    assert np.abs(feats[0].numpy() - ref).max() < KALDI_TOL


def test_fbank_matches_librosa():
    wave, sample_rate = sf.read(AN4_FILES[-1], dtype="float32")
    power = librosa.feature.melspectrogram(y=wave, sr=sample_rate, n_fft=512, hop_length=160, win_length=400,
                                           window="hann", center=False, power=2.0, n_mels=80, fmin=20.0,
                                           fmax=8000.0, htk=True, norm=None)
    ref = np.log(np.maximum(power, np.finfo(np.float32).eps)).T  # (T, F)
    mel = librosa.filters.mel(sr=sample_rate, n_fft=512, n_mels=80, fmin=20.0, fmax=8000.0, htk=True, norm=None)
    hann = torch.from_numpy(librosa.filters.get_window("hann", 400, fftbins=True).astype(np.float32))
    # librosa centres the 400-sample window inside each 512-sample frame: its frames start 56 samples later.
    plain = dict(preemphasis=0.0, remove_dc_offset=False, scale=1.0, window_tensor=hann)
    ours, _ = fbank(torch.from_numpy(wave[56:]), mel_matrix=torch.from_numpy(mel.T), **plain)
    frames = min(ref.shape[0], ours.shape[1])
    assert frames > 100
    assert np.abs(ours[0, :frames].numpy() - ref[:frames]).max() < LIBROSA_TOL
    kaldi_mel, _ = fbank(torch.from_numpy(wave[56:]), **plain)
    assert np.abs(kaldi_mel[0, :frames].numpy() - ref[:frames]).max() < LIBROSA_KALDI_MEL_TOL


def test_fbank_batched_equals_single_with_ragged_lengths():
    lengths = [16000, 9377, 401, 399]  # the last one is shorter than one frame
    waves = torch.zeros(len(lengths), max(lengths))
    singles = []
    for b, n in enumerate(lengths):
        wave = torch.from_numpy(_chirp(n, 16000, seed=b))
        waves[b, :n] = wave
        singles.append(fbank(wave)[0][0])
    waves[1, lengths[1]:] = 0.5  # junk in the padding must not leak into valid frames
    feats, feat_lens = fbank(waves, torch.tensor(lengths))
    assert feat_lens.tolist() == [98, 57, 1, 0]
    assert feats.shape == (4, 98, 80)
    for b, single in enumerate(singles):
        n = int(feat_lens[b])
        assert single.shape[0] == n
        torch.testing.assert_close(feats[b, :n], single, atol=1e-5, rtol=0)
        assert torch.all(feats[b, n:] == 0)
    assert torch.isfinite(feats).all()


def test_num_frames_formula():
    samples = torch.tensor([0, 1, 399, 400, 401, 559, 560, 16000, 160000])
    expected = [0 if n < 400 else 1 + (n - 400) // 160 for n in samples.tolist()]
    assert num_frames(samples, 400, 160).tolist() == expected
    module = Fbank(FbankConfig())
    assert module.frame_length_samples == 400 and module.frame_shift_samples == 160
    assert module.num_frames(samples).dtype == torch.int64
    assert module.num_frames(samples).tolist() == expected
    empty, empty_lens = fbank(torch.zeros(2, 300))
    assert empty.shape == (2, 0, 80) and empty_lens.tolist() == [0, 0]


def test_fbank_module_buffers_dither_and_real_file():
    wave, _ = sf.read(AN4_FILES[0], dtype="float32")
    waves = torch.from_numpy(wave)[None].repeat(2, 1)
    module = Fbank(FbankConfig(n_mels=40, dither=1.0))
    assert module.mel_matrix.shape == (257, 40) and module.window.shape == (400,)
    assert "mel_matrix" not in module.state_dict()
    module.eval()
    eval_feats, _ = module(waves, torch.tensor([len(wave), len(wave)]))
    torch.testing.assert_close(eval_feats[0], fbank(torch.from_numpy(wave), n_mels=40)[0][0])
    module.train()
    train_a, _ = module(waves, generator=torch.Generator().manual_seed(3))
    train_b, _ = module(waves, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(train_a, train_b, atol=0, rtol=0)
    assert not torch.equal(train_a, eval_feats)
    assert (train_a - eval_feats).abs().mean() < 0.1  # dither of 1 int16 step barely moves speech features
    assert torch.isfinite(train_a).all()


def test_helpers_and_errors():
    mel = mel_filterbank(512, 80, 16000, 20.0, 0.0)
    assert mel.shape == (257, 80) and torch.all(mel[-1] == 0) and torch.all(mel[0] == 0)
    assert torch.all((mel >= 0) & (mel <= 1)) and torch.all(mel.sum(0) > 0)
    povey = frame_window("povey", 400)
    torch.testing.assert_close(povey, frame_window("hann", 400).pow(0.85))
    assert povey[0] == 0 and abs(float(povey.max()) - 1.0) < 1e-4
    with pytest.raises(ConfigError, match="window='kaiser'"):
        frame_window("kaiser", 400)
    with pytest.raises(ConfigError, match="high_freq"):
        mel_filterbank(512, 80, 16000, 20.0, 9000.0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_fbank_stays_float32_under_autocast(dtype):
    waves = torch.from_numpy(np.stack([_chirp(8000, 16000, seed=s) for s in range(3)]))
    reference, _ = fbank(waves)
    module = Fbank(FbankConfig())
    with torch.autocast("cpu", dtype=dtype):  # a bf16/fp16 mel matmul loses precision (fp16: inf, then NaN)
        feats, _ = fbank(waves)
        module_feats, _ = module(waves)
    for out in (feats, module_feats):
        assert out.dtype == torch.float32
        torch.testing.assert_close(out, reference, atol=1e-5, rtol=0)


def test_mel_bin_without_fft_bins_is_a_config_error():
    # 16 kHz, 128 bins, 512-point FFT: the lowest triangles are narrower than the 31.25 Hz FFT spacing (Kaldi refuses)
    with pytest.raises(ConfigError, match=r"mel bin 3 of n_mels=128 .*n_fft=512.*fewer mel bins"):
        mel_filterbank(512, 128, 16000, 20.0, 0.0)
    with pytest.raises(ConfigError, match="mel bin 3 of n_mels=128"):
        Fbank(FbankConfig(n_mels=128))
    assert torch.all(mel_filterbank(1024, 128, 16000, 20.0, 0.0).sum(0) > 0), "a larger FFT fills every bin"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fbank_cuda_matches_cpu():
    waves = torch.from_numpy(np.stack([_chirp(8000, 16000, seed=s) for s in range(3)]))
    lens = torch.tensor([8000, 6000, 500])
    cpu, cpu_lens = fbank(waves, lens)
    gpu, gpu_lens = Fbank(FbankConfig()).cuda()(waves.cuda(), lens.cuda())
    assert gpu.is_cuda and gpu_lens.tolist() == cpu_lens.tolist()
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-3, rtol=0)
