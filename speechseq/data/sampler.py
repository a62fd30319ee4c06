"""Duration-bucketed batch sampling with exact mid-epoch resume.

    durations = utterance_durations(utts)
    sampler = DurationBucketSampler(durations, max_duration_s=200.0, rank=rank, world_size=world_size)
    for epoch in range(start_epoch, num_epochs):
        sampler.set_epoch(epoch)
        for batch_indices in sampler: ...          # list[int] of dataset indices
    checkpoint["sampler"] = sampler.state_dict()   # later: sampler.load_state_dict(checkpoint["sampler"])

A batch's *padded size* is ``max(durations in batch) * len(batch)`` seconds: what the model computes on after
zero-padding. Grouping utterances of similar length keeps it close to the real audio, so little compute is wasted on
padding (see :func:`padding_fraction` and ``benchmarks/bench_sampler.py``).
"""

from __future__ import annotations

import hashlib
from typing import Iterator, Sequence

import numpy as np

from speechseq.data.manifest import Utterance
from speechseq.errors import ConfigError, ManifestError

# state_dict keys that must match for a saved plan to be reproduced exactly.
_PLAN_KEYS = ("max_duration_s", "num_buckets", "shuffle", "world_size", "max_batch_size", "drop_last")


def utterance_durations(utts: Sequence[Utterance]) -> list[float]:
    """Duration in seconds of each utterance, from ``duration`` or else the audio file's header minus ``offset``.

    Raises:
        AudioError: a file without ``duration`` cannot be read.
        ManifestError: the offset lies past the end of the file.
    """
    from speechseq.audio.io import audio_info

    durations = []
    for u in utts:
        if u.duration is not None:
            durations.append(float(u.duration))
            continue
        num_samples, sample_rate = audio_info(u.audio)
        duration_s = num_samples / sample_rate - u.offset
        if duration_s <= 0:
            raise ManifestError(
                f"utterance {u.id!r}: offset {u.offset} s is at or past the end of {u.audio} "
                f"({num_samples / sample_rate:.3f} s)"
            )
        durations.append(duration_s)
    return durations


def padding_fraction(batches: Sequence[Sequence[int]], durations: Sequence[float]) -> float:
    """Share of a batch plan's padded size that is padding: ``1 - sum(durations) / sum(max_dur * len(batch))``.

    Args:
        batches: lists of indices into ``durations``.
        durations: seconds per utterance.

    Returns:
        A fraction in [0, 1); 0.0 for an empty plan.
    """
    real = padded = 0.0
    for batch in batches:
        ds = [durations[i] for i in batch]
        if ds:
            real += sum(ds)
            padded += max(ds) * len(ds)
    return 1.0 - real / padded if padded > 0 else 0.0


def _pack(order: Sequence[int], durations: Sequence[float], max_duration_s: float,
          max_batch_size: int | None) -> list[list[int]]:
    """Greedily cut ``order`` into consecutive batches with ``max_dur * len <= max_duration_s``.

    An utterance longer than ``max_duration_s`` on its own becomes a batch of one; nothing is dropped.
    """
    batches: list[list[int]] = []
    batch: list[int] = []
    longest = 0.0
    for i in order:
        d = durations[i]
        grown = max(longest, d)
        full = max_batch_size is not None and len(batch) >= max_batch_size
        if batch and (full or grown * (len(batch) + 1) > max_duration_s):
            batches.append(batch)
            batch, grown = [], d
        batch.append(int(i))
        longest = grown
    if batch:
        batches.append(batch)
    return batches


def _check_durations(durations: Sequence[float]) -> np.ndarray:
    values = np.asarray(durations, dtype=np.float64)
    if values.ndim != 1:
        raise ManifestError(f"durations must be a flat sequence of seconds, got shape {values.shape}")
    bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
    if bad.size:
        raise ManifestError(f"durations[{bad[0]}] = {values[bad[0]]} is not a non-negative number of seconds")
    return values


def random_batches(durations: Sequence[float], max_duration_s: float, seed: int) -> list[list[int]]:
    """Baseline plan: a random permutation cut greedily under the same padded-size limit as the bucketed sampler.

    Args:
        durations: seconds per utterance.
        max_duration_s: limit on ``max_dur * len(batch)`` (a longer single utterance forms its own batch).
        seed: seed of the permutation.

    Returns:
        Lists of indices; every index appears exactly once.
    """
    values = _check_durations(durations)
    order = np.random.default_rng(seed).permutation(len(values))
    return _pack(order.tolist(), values.tolist(), max_duration_s, None)


def _equal_duration_buckets(values: np.ndarray, num_buckets: int) -> list[np.ndarray]:
    """Indices sorted by duration, cut into ``num_buckets`` runs holding (about) equal total duration."""
    order = np.argsort(values, kind="stable")
    if len(order) == 0:
        return []
    sorted_d = values[order]
    total = float(sorted_d.sum())
    if total <= 0:
        return [order]
    # Bucket of an utterance = where the middle of its duration falls on the cumulative-duration axis.
    centres = np.cumsum(sorted_d) - sorted_d / 2
    ids = np.minimum((centres / (total / num_buckets)).astype(np.int64), num_buckets - 1)
    return [order[ids == b] for b in range(num_buckets) if np.any(ids == b)]


class DurationBucketSampler:
    """Batch sampler: yields ``list[int]`` batches of dataset indices grouped by duration.

    Indices are sorted by duration and cut into ``num_buckets`` buckets holding equal total duration. Every epoch, a
    generator seeded by ``(seed, epoch)`` shuffles each bucket, each bucket is cut greedily into batches whose padded
    size ``max_dur_in_batch * len(batch)`` is at most ``max_duration_s`` (an utterance longer than that forms a batch
    on its own), and the order of all batches is shuffled.

    Distributed training: every rank builds the same plan and takes ``batches[rank::world_size]``. To give every rank
    the same number of batches, the plan is first brought to a multiple of ``world_size``:

    * ``drop_last=False`` (default): the batch with the most utterances is split in two (halves never exceed the
      limit), as often as needed, so ranks stay disjoint and no utterance is dropped or repeated. Only when fewer
      utterances than ranks remain to split are batches repeated, cycling through the plan from its start (ranks
      then overlap in those).
    * ``drop_last=True``: the last ``len(plan) % world_size`` batches are dropped (their utterances are skipped for
      this epoch; a different set every epoch).

    With ``world_size == 1`` every index appears exactly once per epoch.

    Resume: :meth:`state_dict` records the epoch and how many batches this rank has yielded in it; after
    :meth:`load_state_dict` the next iteration continues right after the last yielded batch, giving the same batches
    as an uninterrupted run. The state is identical on every rank, so rank 0's state may be loaded everywhere.
    A ``DataLoader`` with workers draws batches ahead of the training loop (``prefetch_factor * num_workers``); a
    trainer resuming exactly should store the number of batches it actually consumed under
    ``"num_batches_yielded"``.
    """

    def __init__(
        self,
        durations: Sequence[float],
        max_duration_s: float,
        num_buckets: int = 10,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        max_batch_size: int | None = None,
        drop_last: bool = False,
    ) -> None:
        """Plan batches over utterances of the given durations.

        Args:
            durations: seconds per dataset index (see :func:`utterance_durations`).
            max_duration_s: limit on a batch's padded size ``max_dur * len(batch)`` in seconds.
            num_buckets: number of equal-total-duration buckets (clipped to the number of utterances).
            shuffle: shuffle within buckets and the batch order each epoch; False gives batches in increasing
                duration order (still packed per bucket).
            seed: non-negative seed; the epoch's generator is seeded by ``(seed, epoch)``.
            rank: this process's rank in ``[0, world_size)``.
            world_size: number of data-parallel processes.
            max_batch_size: optional cap on utterances per batch.
            drop_last: trim the plan to a multiple of ``world_size`` instead of splitting batches (see class doc).

        Raises:
            ConfigError: a non-positive limit, bucket count, batch size or world size, a rank out of range or a
                negative seed.
            ManifestError: a negative or non-finite duration.
        """
        if not max_duration_s > 0:
            raise ConfigError(f"max_duration_s must be positive, got {max_duration_s}")
        if num_buckets < 1:
            raise ConfigError(f"num_buckets must be >= 1, got {num_buckets}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"need 0 <= rank < world_size, got rank={rank} world_size={world_size}")
        if max_batch_size is not None and max_batch_size < 1:
            raise ConfigError(f"max_batch_size must be >= 1 or None, got {max_batch_size}")
        if seed < 0:
            raise ConfigError(f"seed must be non-negative, got {seed}")
        self._durations = _check_durations(durations)
        self.max_duration_s = float(max_duration_s)
        self.num_buckets = min(num_buckets, max(len(self._durations), 1))
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.max_batch_size = max_batch_size
        self.drop_last = drop_last
        self._buckets = _equal_duration_buckets(self._durations, self.num_buckets)
        self._fingerprint = hashlib.sha1(self._durations.tobytes()).hexdigest()[:16]
        self._epoch = 0
        self._num_yielded = 0  # batches this rank has yielded in the current epoch
        self._resume_at = 0  # where the next __iter__ starts (set by load_state_dict)
        self._plan_cache: tuple[tuple[int, int], list[list[int]]] | None = None

    @property
    def epoch(self) -> int:
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose plan the next iteration yields.

        Setting the epoch the sampler is already in keeps a position restored by :meth:`load_state_dict`, so the
        usual ``for epoch in range(start, n): sampler.set_epoch(epoch)`` loop resumes correctly.
        """
        if epoch < 0:
            raise ConfigError(f"epoch must be non-negative, got {epoch}")
        if epoch != self._epoch:
            self._epoch = epoch
            self._num_yielded = 0
            self._resume_at = 0

    def plan(self) -> list[list[int]]:
        """The current epoch's full batch plan over all ranks (after evening out to a multiple of world_size)."""
        key = (self._epoch, self.seed)
        if self._plan_cache is None or self._plan_cache[0] != key:
            self._plan_cache = (key, self._make_plan())
        return self._plan_cache[1]

    def _make_plan(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self._epoch])
        durations = self._durations.tolist()
        batches: list[list[int]] = []
        for bucket in self._buckets:
            order = rng.permutation(bucket) if self.shuffle else bucket
            batches.extend(_pack(order.tolist(), durations, self.max_duration_s, self.max_batch_size))
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return self._even_out(batches)

    def _even_out(self, batches: list[list[int]]) -> list[list[int]]:
        """Make ``len(batches)`` a multiple of world_size (see the class docstring)."""
        ws = self.world_size
        if self.drop_last:
            return batches[: len(batches) // ws * ws]
        while len(batches) % ws:
            largest = max(range(len(batches)), key=lambda i: len(batches[i]), default=None)
            if largest is None or len(batches[largest]) < 2:
                break
            batch = batches[largest]
            half = len(batch) // 2
            batches[largest: largest + 1] = [batch[:half], batch[half:]]
        if batches and len(batches) % ws:  # cyclic: the plan may have fewer batches than are missing
            missing = ws - len(batches) % ws
            batches = batches + [list(batches[k % len(batches)]) for k in range(missing)]
        return batches

    def _rank_batches(self) -> list[list[int]]:
        return self.plan()[self.rank:: self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._rank_batches()
        start, self._resume_at = self._resume_at, 0
        self._num_yielded = start
        for batch in batches[start:]:
            self._num_yielded += 1
            yield list(batch)

    def __len__(self) -> int:
        """Number of batches this rank yields in the current epoch (the same on every rank)."""
        return len(self._rank_batches())

    @property
    def padding_fraction(self) -> float:
        """Padding share of the current epoch's full plan: ``1 - sum(durations) / sum(max_dur * len(batch))``."""
        return padding_fraction(self.plan(), self._durations.tolist())

    def state_dict(self) -> dict:
        """Position and identity of this sampler: plain ints/floats/strings, safe to put in a checkpoint.

        Keys: ``epoch``, ``num_batches_yielded`` (this epoch, this rank), ``seed``, ``fingerprint`` and
        ``num_utterances`` (of the durations), and the plan settings ``max_duration_s``, ``num_buckets``,
        ``shuffle``, ``world_size``, ``max_batch_size``, ``drop_last``.
        """
        return {
            "epoch": self._epoch,
            "num_batches_yielded": self._num_yielded,
            "seed": self.seed,
            "fingerprint": self._fingerprint,
            "num_utterances": len(self._durations),
            **{key: getattr(self, key) for key in _PLAN_KEYS},
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict`; the next iteration resumes right after the last yielded batch.

        A plan setting absent from ``state`` is taken to match this sampler's: states saved before a setting was
        recorded (``shuffle`` was added last) still load, as the setting cannot be checked.

        Raises:
            ConfigError: the state belongs to other durations (fingerprint) or other plan settings, or its position is
                past the end of the epoch.
        """
        missing = [k for k in ("epoch", "num_batches_yielded", "seed", "fingerprint") if k not in state]
        if missing:
            raise ConfigError(f"sampler state: missing key(s) {missing}")
        if state["fingerprint"] != self._fingerprint:
            raise ConfigError(
                f"sampler state: 'fingerprint' {state['fingerprint']} ({state.get('num_utterances', '?')} utterances) "
                f"was saved for another dataset than this one ({self._fingerprint}, {len(self._durations)} utterances)"
            )
        for key in _PLAN_KEYS:
            if key in state and state[key] != getattr(self, key):
                raise ConfigError(
                    f"sampler state: {key!r} is {state[key]!r} but this sampler has {getattr(self, key)!r}"
                )
        self.seed = int(state["seed"])
        self._epoch = int(state["epoch"])
        position = int(state["num_batches_yielded"])
        if not 0 <= position <= len(self):
            raise ConfigError(f"sampler state: 'num_batches_yielded' {position} is outside [0, {len(self)}]")
        self._num_yielded = self._resume_at = position
