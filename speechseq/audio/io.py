"""Audio file IO with soundfile and resampling with soxr (no torchaudio).

    wave, sample_rate = load_audio("a.flac", sample_rate=16000, offset_s=1.5, duration_s=2.0)
    save_audio("out/a.wav", wave, sample_rate)

Waves are float32 numpy arrays: mono ``(N,)`` from :func:`load_audio`; :func:`save_audio` also takes channels-first
``(C, N)`` arrays or tensors. Every failure on a bad file raises :class:`AudioError` whose message starts with the
path, e.g. ``data/a.wav: contains NaN or Inf samples``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from speechseq.errors import AudioError

# How far a segment may end past the end of its file and still be read (cut at the end): Kaldi segments often
# overshoot by a frame or two (10-25 ms); 50 ms allows that and still refuses a segment of the wrong file.
SEGMENT_END_TOLERANCE_S = 0.05


def audio_info(path: str | Path) -> tuple[int, int]:
    """Read the header only.

    Args:
        path: audio file readable by soundfile (wav, flac, ogg, mp3, ...).

    Returns:
        (num_samples, sample_rate): samples per channel and Hz.
    """
    _check_exists(path)
    try:
        info = sf.info(str(path))
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError / TypeError depending on the failure
        raise AudioError(f"{path}: cannot read audio header ({e})") from e
    return int(info.frames), int(info.samplerate)


def load_audio(
    path: str | Path,
    sample_rate: int | None = None,
    offset_s: float = 0.0,
    duration_s: float | None = None,
) -> tuple[np.ndarray, int]:
    """Read (a segment of) an audio file as mono float32.

    Only the requested segment is decoded (soundfile ``start``/``frames``). Multi-channel audio is averaged to mono.
    PCM files give values in [-1, 1]; float files are returned as stored (not clipped). If soundfile cannot decode
    the file and librosa is importable, ``librosa.load`` is tried before giving up.

    Args:
        path: audio file (wav, flac, ogg, mp3 with libsndfile >= 1.1, ...).
        sample_rate: target rate, Hz; None keeps the file's rate. A different rate is resampled with soxr "HQ".
        offset_s: segment start, seconds from the beginning of the file.
        duration_s: segment length, seconds; None reads to the end of the file. A segment ending at most
            ``SEGMENT_END_TOLERANCE_S`` (50 ms) past the end of the file is cut at the end; further is an error.

    Returns:
        wave: (N,) float32 mono samples at the returned rate.
        sample_rate: Hz of ``wave``.

    Raises:
        AudioError: the file is missing, unreadable or not audio, the segment is empty (e.g. ``offset_s`` past the
            end) or ends over 50 ms past the end of the file, or the samples contain NaN/Inf. The message starts with
            the path.
    """
    _check_exists(path)
    if offset_s < 0 or (duration_s is not None and duration_s < 0):
        raise AudioError(f"{path}: negative offset_s={offset_s} or duration_s={duration_s}")
    try:
        wave, file_rate = _read_soundfile(path, offset_s, duration_s)
    except AudioError:
        raise
    except Exception as e:  # not decodable by libsndfile: try librosa (audioread backends) if present
        wave, file_rate = _read_librosa(path, offset_s, duration_s, e)
    if wave.size == 0:
        raise AudioError(f"{path}: no samples in the requested segment (offset_s={offset_s}, duration_s={duration_s})")
    if duration_s is not None and duration_s - wave.size / file_rate > SEGMENT_END_TOLERANCE_S:
        file_s = round(offset_s * file_rate) / file_rate + wave.size / file_rate
        raise AudioError(f"{path}: segment offset_s={offset_s} + duration_s={duration_s} ends at "
                         f"{offset_s + duration_s:.3f} s, past the end of the file ({file_s:.3f} s)")
    if not np.isfinite(wave).all():
        raise AudioError(f"{path}: contains NaN or Inf samples")
    if sample_rate is not None and sample_rate != file_rate:
        wave = resample(wave, file_rate, sample_rate)
        file_rate = sample_rate
    return wave, file_rate


def _check_exists(path: str | Path) -> None:
    if not os.path.exists(path):
        raise AudioError(f"{path}: no such file")
    if os.path.isdir(path):
        raise AudioError(f"{path}: is a directory, not an audio file")


def _read_soundfile(path: str | Path, offset_s: float, duration_s: float | None) -> tuple[np.ndarray, int]:
    with sf.SoundFile(str(path)) as f:
        file_rate = int(f.samplerate)
        start = int(round(offset_s * file_rate))
        if f.frames > 0 and start >= f.frames:
            raise AudioError(f"{path}: offset_s={offset_s} is at or past the end ({f.frames / file_rate:.3f} s)")
        frames = -1 if duration_s is None else int(round(duration_s * file_rate))
        if start:
            f.seek(start)
        data = f.read(frames=frames, dtype="float32", always_2d=True)  # (N, C)
    return _to_mono(data), file_rate


def _read_librosa(
    path: str | Path, offset_s: float, duration_s: float | None, cause: Exception
) -> tuple[np.ndarray, int]:
    try:
        import librosa  # noqa: PLC0415  (optional fallback decoder)
    except ImportError:
        raise AudioError(f"{path}: cannot decode audio ({cause})") from cause
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wave, file_rate = librosa.load(str(path), sr=None, mono=True, offset=offset_s, duration=duration_s)
    except Exception as e:
        raise AudioError(f"{path}: cannot decode audio (soundfile: {cause}; librosa: {type(e).__name__}: {e})") from e
    return np.asarray(wave, dtype=np.float32), int(file_rate)


def _to_mono(data: np.ndarray) -> np.ndarray:
    if data.shape[1] == 1:
        return np.ascontiguousarray(data[:, 0])
    return data.mean(axis=1, dtype=np.float32)


def resample(wave: np.ndarray, orig_sample_rate: int, sample_rate: int) -> np.ndarray:
    """Band-limited resampling with soxr ("HQ").

    Args:
        wave: (N,) or channels-first (C, N) samples.
        orig_sample_rate: Hz of ``wave``.
        sample_rate: target Hz.

    Returns:
        float32 array of shape (round(N * sample_rate / orig_sample_rate),) or (C, that); a copy when the rates
        are equal.
    """
    if orig_sample_rate <= 0 or sample_rate <= 0:
        raise AudioError(f"resample: sample rates must be positive, got {orig_sample_rate} -> {sample_rate}")
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim not in (1, 2):
        raise AudioError(f"resample: wave must be (N,) or (C, N), got shape {wave.shape}")
    if orig_sample_rate == sample_rate:
        return wave.copy()
    frames_first = np.ascontiguousarray(wave.T)  # soxr wants (N,) or (N, C)
    out = soxr.resample(frames_first, orig_sample_rate, sample_rate, quality="HQ")
    return np.ascontiguousarray(out.T, dtype=np.float32)


def save_audio(path: str | Path, wave: np.ndarray | torch.Tensor, sample_rate: int) -> None:
    """Write audio atomically (temporary file in the same folder, then ``os.replace``).

    The format follows the extension (``.wav``, ``.flac``, ``.ogg``, ...). WAV is written as 16-bit PCM; other formats
    use soundfile's default subtype (FLAC 16-bit, OGG Vorbis). Samples are clipped to [-1, 1] for integer PCM.
    Parent folders are created.

    Args:
        path: output file.
        wave: (N,) mono or channels-first (C, N) float samples in [-1, 1].
        sample_rate: Hz.
    """
    path = Path(path)
    if isinstance(wave, torch.Tensor):
        wave = wave.detach().to("cpu", torch.float32).numpy()
    data = np.asarray(wave, dtype=np.float32)
    if data.ndim == 2:
        data = data.T  # soundfile wants (N, C)
    elif data.ndim != 1:
        raise AudioError(f"{path}: wave must be (N,) or (C, N), got shape {np.shape(wave)}")
    fmt = path.suffix[1:].upper()
    if fmt not in sf.available_formats():
        known = ", ".join(sorted(sf.available_formats()))
        raise AudioError(f"{path}: unknown audio extension {path.suffix!r} (soundfile writes {known})")
    subtype = "PCM_16" if fmt == "WAV" else sf.default_subtype(fmt)
    if subtype is not None and subtype.startswith("PCM"):
        data = np.clip(data, -1.0, 1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        sf.write(str(tmp), data, sample_rate, subtype=subtype, format=fmt)
        os.replace(tmp, path)
    except Exception as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, (sf.LibsndfileError, RuntimeError, TypeError, ValueError)):
            raise AudioError(f"{path}: cannot write audio ({e})") from e
        raise
