"""DurationBucketSampler: coverage, sharding, padded-size limit, padding fraction and exact resume."""

import itertools
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechseq.data.manifest import Utterance
from speechseq.data.sampler import DurationBucketSampler, padding_fraction, random_batches, utterance_durations
from speechseq.errors import ConfigError, ManifestError


def _lognormal(n: int, seed: int = 0) -> list[float]:
    """Speech-like durations: median 5 s, long right tail (about 1.5-20 s)."""
    return np.random.default_rng(seed).lognormal(np.log(5.0), 0.5, n).tolist()


def test_every_index_exactly_once_per_epoch_and_epochs_differ() -> None:
    durations = _lognormal(97)
    sampler = DurationBucketSampler(durations, max_duration_s=30.0, num_buckets=5, seed=3)
    plans = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        assert sorted(itertools.chain.from_iterable(batches)) == list(range(97))
        plans.append(batches)
    assert plans[0] != plans[1] != plans[2]
    sampler.set_epoch(1)
    assert list(sampler) == plans[1], "an epoch's plan depends only on (seed, epoch)"


@pytest.mark.parametrize("world_size", [2, 3])
def test_shards_are_disjoint_equal_length_and_cover_everything(world_size: int) -> None:
    durations = _lognormal(101, seed=world_size)
    for epoch in range(4):  # several epochs: the plan length mod world_size varies
        shards = []
        for rank in range(world_size):
            sampler = DurationBucketSampler(durations, 25.0, num_buckets=4, rank=rank, world_size=world_size)
            sampler.set_epoch(epoch)
            shards.append(list(sampler))
            assert len(shards[-1]) == len(sampler)
        assert len({len(s) for s in shards}) == 1
        indices = [i for shard in shards for batch in shard for i in batch]
        assert sorted(indices) == list(range(101)), "disjoint and nothing dropped"


def test_drop_last_trims_to_a_multiple_of_world_size() -> None:
    durations = _lognormal(50)
    full = DurationBucketSampler(durations, 20.0, seed=3, drop_last=True).plan()  # world_size 1: nothing dropped
    assert sorted(i for b in full for i in b) == list(range(50))
    assert len(full) % 3 == 1
    shards = [
        list(DurationBucketSampler(durations, 20.0, seed=3, rank=r, world_size=3, drop_last=True)) for r in range(3)
    ]
    assert [len(s) for s in shards] == [len(full) // 3] * 3
    indices = [i for s in shards for b in s for i in b]
    assert len(indices) == len(set(indices))
    assert sorted(indices) == sorted(i for b in full[:-1] for i in b), "only the last batch is dropped"


def test_more_ranks_than_utterances_repeats_batches() -> None:
    shards = [list(DurationBucketSampler([1.0, 2.0], 10.0, rank=r, world_size=3)) for r in range(3)]
    assert [len(s) for s in shards] == [1, 1, 1]
    assert sorted(i for s in shards[:2] for b in s for i in b) == [0, 1]


@pytest.mark.parametrize("num_utts,world_size", [(1, 4), (1, 2), (2, 5), (3, 8)])
def test_fewer_batches_than_ranks_still_gives_every_rank_the_same_count(num_utts: int, world_size: int) -> None:
    # one utterance, four ranks: padding must cycle through the plan, or ranks 2/3 get nothing (DDP deadlock)
    durations = [1.0] * num_utts
    shards = [list(DurationBucketSampler(durations, 10.0, rank=r, world_size=world_size)) for r in range(world_size)]
    assert [len(s) for s in shards] == [1] * world_size
    assert sorted({i for s in shards for b in s for i in b}) == list(range(num_utts))


def test_padded_size_limit_and_max_batch_size() -> None:
    durations = _lognormal(300) + [45.0]  # one utterance longer than the limit
    sampler = DurationBucketSampler(durations, max_duration_s=40.0, max_batch_size=6)
    batches = list(sampler)
    for batch in batches:
        assert len(batch) <= 6
        padded = max(durations[i] for i in batch) * len(batch)
        assert padded <= 40.0 or batch == [300]
    assert [300] in batches
    assert sorted(i for b in batches for i in b) == list(range(301))


def test_bucketing_pads_far_less_than_random_batching() -> None:
    durations = _lognormal(500)
    for epoch in range(3):
        sampler = DurationBucketSampler(durations, max_duration_s=40.0, num_buckets=10, seed=epoch)
        random_pad = padding_fraction(random_batches(durations, 40.0, seed=epoch), durations)
        assert sampler.padding_fraction < 0.10
        assert sampler.padding_fraction < random_pad / 3
        assert sampler.padding_fraction == pytest.approx(padding_fraction(sampler.plan(), durations))
    assert sorted(i for b in random_batches(durations, 40.0, seed=0) for i in b) == list(range(500))


def test_padding_fraction_by_hand() -> None:
    assert padding_fraction([[0, 1], [2]], [1.0, 3.0, 2.0]) == pytest.approx(1 - 6.0 / (6.0 + 2.0))
    assert padding_fraction([], [1.0]) == 0.0


def test_no_shuffle_gives_increasing_durations() -> None:
    durations = _lognormal(40)
    batches = list(DurationBucketSampler(durations, 15.0, shuffle=False))
    flat = [durations[i] for b in batches for i in b]
    assert flat == sorted(flat)


def test_resume_mid_epoch_yields_the_remaining_batches() -> None:
    durations = _lognormal(120)
    reference = DurationBucketSampler(durations, 30.0, seed=7, rank=1, world_size=2)
    reference.set_epoch(2)
    epoch2 = list(reference)
    reference.set_epoch(3)
    epoch3 = list(reference)

    interrupted = DurationBucketSampler(durations, 30.0, seed=7, rank=1, world_size=2)
    interrupted.set_epoch(2)
    taken = list(itertools.islice(iter(interrupted), 5))
    state = interrupted.state_dict()
    assert taken == epoch2[:5]
    assert state["epoch"] == 2 and state["num_batches_yielded"] == 5

    resumed = DurationBucketSampler(durations, 30.0, seed=0, rank=1, world_size=2)  # seed comes from the state
    resumed.load_state_dict(state)
    resumed.set_epoch(2)  # what a training loop does on restart; must keep the position
    assert list(resumed) == epoch2[5:]
    assert resumed.state_dict()["num_batches_yielded"] == len(epoch2)
    resumed.set_epoch(3)
    assert list(resumed) == epoch3


def test_state_of_another_dataset_or_plan_is_refused() -> None:
    state = DurationBucketSampler(_lognormal(60), 30.0).state_dict()
    with pytest.raises(ConfigError, match="fingerprint"):
        DurationBucketSampler(_lognormal(60, seed=1), 30.0).load_state_dict(state)
    with pytest.raises(ConfigError, match="max_duration_s"):
        DurationBucketSampler(_lognormal(60), 31.0).load_state_dict(state)
    with pytest.raises(ConfigError, match="num_batches_yielded"):
        DurationBucketSampler(_lognormal(60), 30.0).load_state_dict({**state, "num_batches_yielded": 10_000})
    with pytest.raises(ConfigError, match="'shuffle' is True but this sampler has False"):
        DurationBucketSampler(_lognormal(60), 30.0, shuffle=False).load_state_dict(state)


def test_state_without_shuffle_key_still_loads() -> None:
    # checkpoints written before 'shuffle' was recorded: the setting is taken to match
    old = {k: v for k, v in DurationBucketSampler(_lognormal(60), 30.0).state_dict().items() if k != "shuffle"}
    for shuffle in (True, False):
        sampler = DurationBucketSampler(_lognormal(60), 30.0, shuffle=shuffle)
        sampler.load_state_dict({**old, "num_batches_yielded": 1})
        assert sampler.state_dict()["num_batches_yielded"] == 1


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="rank"):
        DurationBucketSampler([1.0], 10.0, rank=2, world_size=2)
    with pytest.raises(ConfigError, match="max_duration_s"):
        DurationBucketSampler([1.0], 0.0)
    with pytest.raises(ManifestError, match=r"durations\[1\]"):
        DurationBucketSampler([1.0, float("nan")], 10.0)
    assert list(DurationBucketSampler([], 10.0)) == []


def test_utterance_durations_reads_headers_when_needed(tmp_path: Path) -> None:
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(12000, dtype=np.float32), 8000)  # 1.5 s
    utts = [
        Utterance("a", str(wav), "", duration=0.25),
        Utterance("b", str(wav), "", offset=0.5),
        Utterance("c", str(wav), ""),
    ]
    assert utterance_durations(utts) == pytest.approx([0.25, 1.0, 1.5])
    with pytest.raises(ManifestError, match="'d'.*past the end"):
        utterance_durations([Utterance("d", str(wav), "", offset=2.0)])
