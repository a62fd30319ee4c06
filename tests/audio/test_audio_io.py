"""Audio IO tests: round trips, segments, resampling, mono mixdown, and errors that name the file."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speechseq.audio.io import audio_info, load_audio, resample, save_audio
from speechseq.errors import AudioError

AN4 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "an4_mini" / "audio"


def _tone(num_samples: int, sample_rate: int, freq_hz: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq_hz * np.arange(num_samples) / sample_rate)).astype(np.float32)


@pytest.mark.parametrize("ext,tol", [(".wav", 1 / 32768 + 1e-6), (".flac", 1 / 32768 + 1e-6), (".ogg", None)])
def test_audio_round_trip(tmp_path, ext, tol):
    wave = _tone(8000, 16000)
    path = tmp_path / "nested" / "dir" / f"tone{ext}"
    save_audio(path, torch.from_numpy(wave), 16000)
    assert path.exists() and not list(path.parent.glob(".*tmp"))
    assert audio_info(path) == (8000, 16000)
    loaded, sample_rate = load_audio(path)
    assert sample_rate == 16000 and loaded.dtype == np.float32 and loaded.shape == (8000,)
    if tol is not None:
        assert np.abs(loaded - wave).max() <= tol
    else:  # lossy vorbis: same energy, strongly correlated
        assert abs(np.sqrt(np.mean(loaded**2)) - np.sqrt(np.mean(wave**2))) < 0.02
        assert np.corrcoef(loaded[1000:-1000], wave[1000:-1000])[0, 1] > 0.99


def test_wav_is_pcm16_and_clipped(tmp_path):
    path = tmp_path / "loud.wav"
    save_audio(path, np.array([0.0, 2.0, -3.0, 0.25], dtype=np.float32), 8000)
    assert sf.info(str(path)).subtype == "PCM_16"
    loaded, _ = load_audio(path)
    np.testing.assert_allclose(loaded, [0.0, 32767 / 32768, -1.0, 0.25], atol=1e-6)


def test_segment_read(tmp_path):
    wave = np.linspace(-0.5, 0.5, 16000, dtype=np.float32)
    path = tmp_path / "ramp.flac"
    save_audio(path, wave, 16000)
    segment, _ = load_audio(path, offset_s=0.25, duration_s=0.5)
    assert segment.shape == (8000,)
    np.testing.assert_allclose(segment, wave[4000:12000], atol=1 / 32768 + 1e-6)
    tail, _ = load_audio(path, offset_s=0.75)
    assert tail.shape == (4000,)


def test_segment_past_the_end_is_an_error_beyond_the_tolerance(tmp_path):
    path = tmp_path / "one_second.wav"
    save_audio(path, _tone(16000, 16000), 16000)
    near, _ = load_audio(path, offset_s=0.5, duration_s=0.54)  # 40 ms past the end: Kaldi-style slack, cut there
    assert near.shape == (8000,)
    with pytest.raises(AudioError, match=r"one_second\.wav: segment offset_s=0\.5 \+ duration_s=0\.6 ends at 1\.100 s, "
                                         r"past the end of the file \(1\.000 s\)"):
        load_audio(path, offset_s=0.5, duration_s=0.6)


def test_resample_8k_to_16k(tmp_path):
    path = tmp_path / "tone8k.wav"
    save_audio(path, _tone(8000, 8000, freq_hz=300.0), 8000)
    wave, sample_rate = load_audio(path, sample_rate=16000)
    assert sample_rate == 16000 and wave.shape == (16000,) and wave.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(wave))
    assert abs(np.argmax(spectrum) * 16000 / len(wave) - 300.0) <= 1.0
    assert resample(np.zeros((2, 441), np.float32), 44100, 16000).shape == (2, 160)


def test_stereo_is_averaged_to_mono(tmp_path):
    left, right = _tone(4000, 16000, amplitude=0.4), np.full(4000, 0.2, np.float32)
    path = tmp_path / "stereo.wav"
    save_audio(path, np.stack([left, right]), 16000)  # channels-first (C, N)
    assert sf.info(str(path)).channels == 2
    wave, _ = load_audio(path)
    assert wave.shape == (4000,)
    np.testing.assert_allclose(wave, (left + right) / 2, atol=1 / 32768 + 1e-6)


def test_real_recording():
    path = sorted(AN4.glob("*.wav"))[0]
    num_samples, sample_rate = audio_info(path)
    wave, rate = load_audio(path)
    assert rate == sample_rate == 16000 and wave.shape == (num_samples,)
    assert np.isfinite(wave).all() and 0 < np.abs(wave).max() <= 1.0


def test_missing_file(tmp_path):
    path = tmp_path / "nope.wav"
    with pytest.raises(AudioError, match=r"nope\.wav: no such file"):
        load_audio(path)
    with pytest.raises(AudioError, match=r"nope\.wav"):
        audio_info(path)


def test_unreadable_file(tmp_path):
    path = tmp_path / "garbage.wav"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(AudioError) as info:
        load_audio(path)
    assert str(info.value).startswith(str(path))
    with pytest.raises(AudioError, match=r"garbage\.wav"):
        audio_info(path)


def test_empty_file_and_offset_past_end(tmp_path):
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros(0, np.float32), 16000, subtype="PCM_16")
    with pytest.raises(AudioError, match=r"empty\.wav: no samples"):
        load_audio(empty)
    short = tmp_path / "short.wav"
    save_audio(short, np.zeros(1600, np.float32), 16000)
    with pytest.raises(AudioError, match=r"short\.wav: offset_s=0\.5"):
        load_audio(short, offset_s=0.5)


def test_nan_file(tmp_path):
    path = tmp_path / "nan.wav"
    wave = np.zeros(100, np.float32)
    wave[10] = np.nan
    sf.write(str(path), wave, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: contains NaN or Inf"):
        load_audio(path)


def test_unknown_extension(tmp_path):
    with pytest.raises(AudioError, match=r"x\.xyz: unknown audio extension"):
        save_audio(tmp_path / "x.xyz", np.zeros(10, np.float32), 16000)
