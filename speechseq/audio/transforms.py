"""Thin ``nn.Module`` wrappers over :mod:`speechseq.audio.functional` that hold precomputed buffers.

    fbank = Fbank(FbankConfig(n_mels=80))
    feats, feat_lens = fbank(waves, wave_lens)       # (B, T, 80), (B,)
    feats = SpecAugment(SpecAugmentConfig())(feats, feat_lens)

The mel matrix and window are non-persistent buffers: they follow ``.to(device)`` but are not stored in checkpoints
(they are rebuilt from the config). Dims legend: B batch, N samples, T frames, F mel bins.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from speechseq.audio import functional as F


@dataclass
class FbankConfig:
    """Kaldi-compatible log-mel settings (see :func:`speechseq.audio.functional.fbank`).

    Attributes:
        sample_rate: Hz of the input waves.
        n_mels: mel bins F.
        frame_length_ms: window length, milliseconds.
        frame_shift_ms: hop, milliseconds.
        dither: Gaussian dither std in the int16-scaled domain, applied in training mode only.
        preemphasis: pre-emphasis coefficient; 0 disables it.
        low_freq: lower mel edge, Hz.
        high_freq: upper mel edge, Hz; <= 0 means nyquist + high_freq.
    """

    sample_rate: int = 16000
    n_mels: int = 80
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    dither: float = 0.0
    preemphasis: float = 0.97
    low_freq: float = 20.0
    high_freq: float = 0.0


class Fbank(nn.Module):
    """Log-mel filterbank features with a cached mel matrix and povey window."""

    def __init__(self, cfg: FbankConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self._frame_length = F._num_samples(cfg.sample_rate, cfg.frame_length_ms, "frame_length_ms")
        self._frame_shift = F._num_samples(cfg.sample_rate, cfg.frame_shift_ms, "frame_shift_ms")
        n_fft = F._next_power_of_two(self._frame_length)
        mel = F.mel_filterbank(n_fft, cfg.n_mels, cfg.sample_rate, cfg.low_freq, cfg.high_freq)
        self.register_buffer("mel_matrix", mel, persistent=False)  # (n_fft // 2 + 1, F)
        self.register_buffer("window", F.frame_window("povey", self._frame_length), persistent=False)

    @property
    def frame_length_samples(self) -> int:
        """Window length in samples (400 at 16 kHz, 25 ms)."""
        return self._frame_length

    @property
    def frame_shift_samples(self) -> int:
        """Hop in samples (160 at 16 kHz, 10 ms)."""
        return self._frame_shift

    def num_frames(self, num_samples: Tensor) -> Tensor:
        """(B,) sample counts -> (B,) int64 frame counts, ``1 + (N - frame_length) // frame_shift`` or 0."""
        return F.num_frames(num_samples, self._frame_length, self._frame_shift)

    def forward(
        self, waves: Tensor, wave_lens: Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Compute features.

        Args:
            waves: (B, N) float waveforms in [-1, 1].
            wave_lens: (B,) int64 valid samples; None means all N.
            generator: random generator for the dither (training mode only).

        Returns:
            feats: (B, T, F) float32 log-mel, zero beyond ``feat_lens``.
            feat_lens: (B,) int64 valid frames.
        """
        cfg = self.cfg
        return F.fbank(
            waves,
            wave_lens,
            sample_rate=cfg.sample_rate,
            n_mels=cfg.n_mels,
            frame_length_ms=cfg.frame_length_ms,
            frame_shift_ms=cfg.frame_shift_ms,
            dither=cfg.dither if self.training else 0.0,
            preemphasis=cfg.preemphasis,
            low_freq=cfg.low_freq,
            high_freq=cfg.high_freq,
            mel_matrix=self.mel_matrix,
            window_tensor=self.window,
            generator=generator,
        )


@dataclass
class SpecAugmentConfig:
    """SpecAugment masking (see :func:`speechseq.audio.functional.spec_augment`).

    Attributes:
        num_freq_masks: frequency masks per utterance.
        freq_mask_width: maximum frequency mask width, mel bins.
        num_time_masks: time masks per utterance.
        time_mask_ratio: maximum time mask width as a fraction of the utterance's frames.
    """

    num_freq_masks: int = 2
    freq_mask_width: int = 27
    num_time_masks: int = 10
    time_mask_ratio: float = 0.05


class SpecAugment(nn.Module):
    """Zero-valued frequency and time masks in training mode; identity in eval mode."""

    def __init__(self, cfg: SpecAugmentConfig) -> None:
        super().__init__()
        self.cfg = cfg

    def forward(self, feats: Tensor, feat_lens: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Mask features.

        Args:
            feats: (B, T, F) features (normally after global mean/variance normalisation).
            feat_lens: (B,) int64 valid frames; padding frames are never changed.
            generator: random generator; None uses the global one.

        Returns:
            (B, T, F) masked copy in training mode, ``feats`` itself in eval mode.
        """
        if not self.training:
            return feats
        cfg = self.cfg
        return F.spec_augment(
            feats,
            feat_lens,
            num_freq_masks=cfg.num_freq_masks,
            freq_mask_width=cfg.freq_mask_width,
            num_time_masks=cfg.num_time_masks,
            time_mask_ratio=cfg.time_mask_ratio,
            generator=generator,
        )
