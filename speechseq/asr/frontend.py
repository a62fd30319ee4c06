"""ASR front end shared by every ASR model: waveform -> log-mel fbank -> (training: VTLP warp, random EQ; at test
time, optionally, a given warp per utterance) -> (optionally: per-utterance mean subtraction) -> global mean/variance
norm -> (training: SpecAugment).

Global (corpus-level) statistics by default, not per-utterance CMVN: they are fixed buffers, so streaming and offline
see the same normalisation. ``set_stats`` is called once before training from a sample of training features.
``utterance_cmn`` (off by default) also subtracts each utterance's own mean log-mel over its valid frames, which
removes a fixed channel or speaker spectral envelope; it needs the whole utterance, so it is for offline models.
Dims: B batch, N samples, T frames, F mel bins.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from speechseq.audio.functional import random_eq_curves, vtlp_warp
from speechseq.audio.transforms import Fbank, FbankConfig, SpecAugment, SpecAugmentConfig
from speechseq.errors import ConfigError
from speechseq.layers.masks import valid_mask


@dataclass
class FrontendConfig:
    """fbank: feature extraction; specaug: training-time masking (``enabled`` False switches it off); vtlp: in
    training, each utterance's spectrum is warped by a factor drawn uniformly from ``[1 - vtlp, 1 + vtlp]``
    (:func:`speechseq.audio.functional.vtlp_warp`; 0 switches it off; ~0.1 spans adult male to female vocal
    tracts); eq_db: in training, a random smooth gain curve with coefficients up to this many dB is added to each
    utterance's log-mel (:func:`speechseq.audio.functional.random_eq_curves`; 0 = off); eq_terms: cosine terms of
    that curve (1 = level only, 2 adds a spectral tilt, more add narrower bumps); utterance_cmn: subtract each
    utterance's mean log-mel (over its valid frames, per bin) before the global normalisation, in training and at
    test time alike (offline only: it needs the whole utterance)."""

    fbank: FbankConfig = field(default_factory=FbankConfig)
    specaug: SpecAugmentConfig = field(default_factory=SpecAugmentConfig)
    specaug_enabled: bool = True
    vtlp: float = 0.0
    eq_db: float = 0.0
    eq_terms: int = 4
    utterance_cmn: bool = False


class Frontend(nn.Module):
    def __init__(self, cfg: FrontendConfig):
        super().__init__()
        if not 0.0 <= cfg.vtlp < 1.0:
            raise ConfigError(f"frontend.vtlp={cfg.vtlp} must be in [0, 1) (the warp factor's maximum deviation from 1)")
        if cfg.eq_db < 0.0:
            raise ConfigError(f"frontend.eq_db={cfg.eq_db} must be >= 0")
        if cfg.eq_terms < 1:
            raise ConfigError(f"frontend.eq_terms={cfg.eq_terms} must be >= 1")
        self.cfg = cfg
        self.fbank = Fbank(cfg.fbank)
        self.specaug = SpecAugment(cfg.specaug) if cfg.specaug_enabled else None
        self.register_buffer("mean", torch.zeros(cfg.fbank.n_mels))
        self.register_buffer("inv_std", torch.ones(cfg.fbank.n_mels))

    @property
    def sample_rate(self) -> int:
        return self.cfg.fbank.sample_rate

    @torch.no_grad()
    def set_stats(self, feats: Tensor, feat_lens: Tensor) -> None:
        """Set the normalisation from raw fbank features (B, T, F) with lengths (B,)."""
        valid = valid_mask(feat_lens, feats.shape[1]).unsqueeze(-1)
        n = valid.sum().clamp(min=1)
        mean = (feats * valid).sum((0, 1)) / n
        var = (((feats - mean) ** 2) * valid).sum((0, 1)) / n
        self.mean.copy_(mean)
        self.inv_std.copy_(var.clamp(min=1e-8).rsqrt())

    def raw_features(self, waves: Tensor, wave_lens: Tensor) -> tuple[Tensor, Tensor]:
        """(B, N), (B,) -> un-normalised log-mel (B, T, F), (B,) (autocast off: features stay fp32)."""
        with torch.autocast(waves.device.type, enabled=False):
            return self.fbank(waves.float(), wave_lens)

    def forward(self, waves: Tensor, wave_lens: Tensor, warp: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(B, N), (B,) -> normalised (and, in training, SpecAugmented) features (B, T, F), (B,).

        ``warp``: (B,) frequency-warp factors applied to each utterance (:func:`vtlp_warp`; 1 = unchanged), in
        place of training's random VTLP factors: test-time vocal tract length normalisation
        (:meth:`speechseq.infer.recognizer.Recognizer.transcribe` with ``warps``)."""
        feats, feat_lens = self.raw_features(waves, wave_lens)
        fb = self.cfg.fbank
        if warp is not None:
            feats = vtlp_warp(feats, warp, fb.sample_rate, fb.low_freq, fb.high_freq)
        elif self.training and self.cfg.vtlp > 0.0:
            factors = 1.0 + self.cfg.vtlp * (2.0 * torch.rand(feats.shape[0]) - 1.0)
            feats = vtlp_warp(feats, factors, fb.sample_rate, fb.low_freq, fb.high_freq)
        if self.training and self.cfg.eq_db > 0.0:
            curves = random_eq_curves(feats.shape[0], feats.shape[2], self.cfg.eq_db, self.cfg.eq_terms)
            feats = feats + curves.to(feats.device)[:, None]
        if self.cfg.utterance_cmn:  # re-centred on the global mean, so the global statistics still apply
            feats = feats - utterance_mean(feats, feat_lens) + self.mean
        feats = (feats - self.mean) * self.inv_std
        if self.training and self.specaug is not None:
            feats = self.specaug(feats, feat_lens)
        return feats, feat_lens


def utterance_mean(feats: Tensor, feat_lens: Tensor) -> Tensor:
    """(B, T, F), (B,) -> (B, 1, F): each utterance's mean over its first ``feat_lens`` frames (padding ignored, so
    an utterance's result does not depend on what it is batched with)."""
    valid = valid_mask(feat_lens, feats.shape[1]).unsqueeze(-1)
    return (feats * valid).sum(1, keepdim=True) / feat_lens.clamp(min=1)[:, None, None].to(feats.dtype)
