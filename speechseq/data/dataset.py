"""ASR dataset: utterances -> (wave, tokens) examples -> zero-padded batches.

    dataset = AsrDataset(utts, sample_rate=16000, encode=tokenizer.encode, augment=WaveAugmentConfig((0.9, 1.0, 1.1)))
    sampler = DurationBucketSampler(utterance_durations(utts), max_duration_s=200.0)
    loader = make_loader(dataset, sampler, num_workers=4)
    for epoch in range(num_epochs):
        sampler.set_epoch(epoch)
        dataset.set_epoch(epoch)
        for batch in loader: ...        # Batch: waves (B, N), wave_lens (B,), tokens (B, L), token_lens (B,)

Dims: B batch, N samples, L tokens.

A bad audio file (missing, unreadable, empty, NaN) does not stop training: the item is logged as a warning on the
``speechseq.data`` logger (naming the file and the problem), dropped from its batch and counted in
``Batch.num_skipped``.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from speechseq.data.manifest import Utterance, read_manifest
from speechseq.errors import AudioError, ConfigError

logger = logging.getLogger("speechseq.data")


@dataclass(frozen=True)
class WaveAugmentConfig:
    """On-the-fly waveform augmentation, drawn independently per utterance.

    Attributes:
        speed_factors: speed perturbation factors picked uniformly per utterance (e.g. ``(0.9, 1.0, 1.1)``; a factor
            1.1 makes the audio 10% shorter and higher). Empty = off.
        noise_manifest: JSONL(.gz) manifest of noise recordings (their ``text`` is ignored).
        noise_prob: probability in [0, 1] of adding noise to an utterance; needs ``noise_manifest`` when > 0.
        snr_db_range: (low, high) dB; the SNR is drawn uniformly from it.
        late_speed_factors: the speed factors from epoch ``late_from_epoch`` on (empty = ``speed_factors``
            throughout): a curriculum that adds the harder factors (e.g. 1.2) only once the model has learnt the
            easier ones. It switches at an epoch boundary, so that every item's draw still depends only on its
            epoch and index (exact resume, workers that prefetch across the switch).
        late_from_epoch: the first epoch (0-based) of ``late_speed_factors``.
    """

    speed_factors: tuple[float, ...] = ()
    noise_manifest: str | None = None
    noise_prob: float = 0.0
    snr_db_range: tuple[float, float] = (10.0, 30.0)
    late_speed_factors: tuple[float, ...] = ()
    late_from_epoch: int = 0

    def __post_init__(self) -> None:
        for name in ("speed_factors", "late_speed_factors"):
            if any(not f > 0 for f in getattr(self, name)):
                raise ConfigError(f"augment.{name}: every factor must be > 0, got {getattr(self, name)}")
        if self.late_from_epoch < 0:
            raise ConfigError(f"augment.late_from_epoch must be >= 0, got {self.late_from_epoch}")
        if not 0.0 <= self.noise_prob <= 1.0:
            raise ConfigError(f"augment.noise_prob must be in [0, 1], got {self.noise_prob}")
        if self.noise_prob > 0 and not self.noise_manifest:
            raise ConfigError("augment.noise_prob > 0 needs augment.noise_manifest")
        low, high = self.snr_db_range
        if low > high:
            raise ConfigError(f"augment.snr_db_range must be (low, high) with low <= high, got {self.snr_db_range}")

    def speed_factors_at(self, epoch: int) -> tuple[float, ...]:
        """The speed factors that epoch ``epoch`` draws from."""
        if self.late_speed_factors and epoch >= self.late_from_epoch:
            return self.late_speed_factors
        return self.speed_factors


@dataclass(frozen=True)
class Example:
    """One loaded utterance.

    Attributes:
        id: utterance id.
        wave: (N,) float32 samples at the dataset's sample rate (after augmentation).
        tokens: (L,) int64 token ids (empty without an encoder).
        text: transcript.
    """

    id: str
    wave: Tensor
    tokens: Tensor
    text: str


@dataclass
class Batch:
    """A zero-padded batch of examples.

    Attributes:
        ids: B utterance ids.
        waves: (B, N) float32, zero after each row's length.
        wave_lens: (B,) int64 valid samples per row.
        tokens: (B, L) int64, ``pad_id`` after each row's length.
        token_lens: (B,) int64 valid tokens per row.
        texts: B transcripts.
        num_skipped: examples of this batch dropped because their audio was bad.
    """

    ids: list[str]
    waves: Tensor
    wave_lens: Tensor
    tokens: Tensor
    token_lens: Tensor
    texts: list[str]
    num_skipped: int = 0

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """A copy with every tensor on ``device``."""
        return replace(
            self,
            waves=self.waves.to(device, non_blocking=non_blocking),
            wave_lens=self.wave_lens.to(device, non_blocking=non_blocking),
            tokens=self.tokens.to(device, non_blocking=non_blocking),
            token_lens=self.token_lens.to(device, non_blocking=non_blocking),
        )

    def __len__(self) -> int:
        return len(self.ids)


def _item_seed(seed: int, epoch: int, index: int) -> int:
    """A well-mixed 32-bit seed for one (seed, epoch, index) triple."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


class AsrDataset(Dataset):
    """Map-style dataset of utterances loaded as mono float32 waves at ``sample_rate``.

    Augmentation is reproducible: item ``i`` in epoch ``e`` draws from a generator seeded by ``(seed, e, i)``, so it
    does not depend on the number of workers or on which worker loads it, changes every epoch, and repeats exactly
    after a resume. The epoch lives in a shared-memory tensor so that :meth:`set_epoch` reaches persistent workers.
    """

    def __init__(
        self,
        utts: Sequence[Utterance],
        sample_rate: int,
        encode: Callable[[str], list[int]] | None = None,
        augment: WaveAugmentConfig | None = None,
        seed: int = 0,
    ) -> None:
        """Wrap utterances.

        Args:
            utts: utterances (offset/duration in seconds select a segment of the file).
            sample_rate: Hz every wave is resampled to.
            encode: text -> token ids (e.g. a tokenizer's encode); None gives empty token tensors.
            augment: waveform augmentation; None or a default config = off.
            seed: non-negative base seed of the augmentation.

        Raises:
            ConfigError: a non-positive sample rate or negative seed.
            ManifestError: the noise manifest is missing or malformed.
            AudioError: a noise file without ``duration`` cannot be read.
        """
        if sample_rate <= 0:
            raise ConfigError(f"sample_rate must be positive, got {sample_rate}")
        if seed < 0:
            raise ConfigError(f"seed must be non-negative, got {seed}")
        self.utts = list(utts)
        self.sample_rate = sample_rate
        self.encode = encode
        self.augment = augment or WaveAugmentConfig()
        self.seed = seed
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        self._noises: list[Utterance] = []
        self._noise_durations: list[float] = []
        if self.augment.noise_prob > 0:
            from speechseq.data.sampler import utterance_durations

            self._noises = read_manifest(self.augment.noise_manifest)
            self._noise_durations = utterance_durations(self._noises)

    def __len__(self) -> int:
        return len(self.utts)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentation draws the next items use (visible to running workers)."""
        self._epoch.fill_(epoch)

    @property
    def _augmenting(self) -> bool:
        cfg = self.augment
        return bool(cfg.speed_factors) or bool(cfg.late_speed_factors) or cfg.noise_prob > 0

    def __getitem__(self, index: int) -> Example | None:
        """Load, augment and encode utterance ``index``; None (after a warning) when its audio is bad."""
        from speechseq.audio.io import load_audio

        utt = self.utts[index]
        try:
            wave_np, _ = load_audio(utt.audio, self.sample_rate, offset_s=utt.offset, duration_s=utt.duration)
            wave = torch.from_numpy(wave_np)
            if self._augmenting:
                epoch = int(self._epoch.item())
                generator = torch.Generator().manual_seed(_item_seed(self.seed, epoch, index))
                wave = self._augment(wave, generator, epoch)
        except AudioError as e:
            logger.warning("skipping utterance %r: %s", utt.id, e)
            return None
        tokens = self.encode(utt.text) if self.encode is not None else []
        return Example(id=utt.id, wave=wave, tokens=torch.tensor(tokens, dtype=torch.int64), text=utt.text)

    def _augment(self, wave: Tensor, generator: torch.Generator, epoch: int) -> Tensor:
        """Speed perturbation, then noise at a random SNR. wave: (N,) float32 -> (N',) float32."""
        from speechseq.audio.functional import mix_at_snr, speed_perturb

        cfg = self.augment
        factors = cfg.speed_factors_at(epoch)
        if factors:
            factor = factors[int(torch.randint(len(factors), (1,), generator=generator))]
            if factor != 1.0:
                wave = speed_perturb(wave, self.sample_rate, factor)
        if cfg.noise_prob > 0 and float(torch.rand((), generator=generator)) < cfg.noise_prob:
            pick = int(torch.randint(len(self._noises), (1,), generator=generator))
            noise = self._load_noise(pick, wave.numel() / self.sample_rate, generator)
            if noise is not None:
                low, high = cfg.snr_db_range
                snr_db = low + (high - low) * float(torch.rand((), generator=generator))
                wave = mix_at_snr(wave, noise, snr_db, generator=generator)
        return wave

    def _load_noise(self, pick: int, duration_s: float, generator: torch.Generator) -> Tensor | None:
        """A random ``duration_s`` stretch of noise recording ``pick`` (the whole file if shorter); None if bad."""
        from speechseq.audio.io import load_audio

        noise = self._noises[pick]
        available_s = self._noise_durations[pick]
        span_s = min(duration_s, available_s)
        start_s = noise.offset + (available_s - span_s) * float(torch.rand((), generator=generator))
        try:
            samples, _ = load_audio(noise.audio, self.sample_rate, offset_s=start_s, duration_s=span_s)
        except AudioError as e:
            logger.warning("noise %r not added: %s", noise.id, e)
            return None
        return torch.from_numpy(samples)


def collate_asr(examples: list[Example | None], pad_id: int = 0) -> Batch:
    """Zero-pad examples into a :class:`Batch`; None entries (bad audio) are dropped and counted in ``num_skipped``.

    Args:
        examples: items from :class:`AsrDataset` (None for skipped ones).
        pad_id: value of token positions past each row's length.

    Returns:
        Batch with waves (B, N_max), tokens (B, L_max); B = 0 (and empty (0, 0) tensors) when all were skipped.
    """
    kept = [e for e in examples if e is not None]
    wave_lens = torch.tensor([e.wave.numel() for e in kept], dtype=torch.int64)
    token_lens = torch.tensor([e.tokens.numel() for e in kept], dtype=torch.int64)
    waves = torch.zeros(len(kept), int(wave_lens.max()) if kept else 0, dtype=torch.float32)
    tokens = torch.full((len(kept), int(token_lens.max()) if kept else 0), pad_id, dtype=torch.int64)
    for row, e in enumerate(kept):
        waves[row, : e.wave.numel()] = e.wave
        tokens[row, : e.tokens.numel()] = e.tokens
    return Batch(
        ids=[e.id for e in kept],
        waves=waves,
        wave_lens=wave_lens,
        tokens=tokens,
        token_lens=token_lens,
        texts=[e.text for e in kept],
        num_skipped=len(examples) - len(kept),
    )


def make_loader(
    dataset: AsrDataset,
    batch_sampler: Iterable[list[int]],
    num_workers: int = 0,
    pad_id: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """DataLoader over ``dataset`` with batches from ``batch_sampler`` collated by :func:`collate_asr`.

    Workers are persistent when ``num_workers > 0`` (no re-fork per epoch); call ``set_epoch`` on both the sampler
    and the dataset before each epoch.

    Args:
        dataset: the dataset.
        batch_sampler: yields lists of dataset indices (e.g. DurationBucketSampler).
        num_workers: loader processes; 0 loads in the calling process.
        pad_id: token padding value.
        pin_memory: pin batches in page-locked memory (useful for CUDA training).
    """
    return DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        num_workers=num_workers,
        collate_fn=functools.partial(collate_asr, pad_id=pad_id),
        persistent_workers=num_workers > 0,
        pin_memory=pin_memory,
    )
