"""AsrDataset / collate_asr / make_loader: padding, bad audio skipped with warnings, reproducible augmentation."""

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speechseq.data.dataset import AsrDataset, Batch, Example, WaveAugmentConfig, collate_asr, make_loader
from speechseq.data.manifest import Utterance, read_manifest, write_manifest
from speechseq.data.sampler import DurationBucketSampler, utterance_durations
from speechseq.errors import ConfigError

FILE_RATE = 8000
SAMPLE_RATE = 16000  # the dataset resamples every file 8 -> 16 kHz


def _encode(text: str) -> list[int]:
    return [ord(c) - ord("a") + 1 for c in text.replace(" ", "")]


def _tone(num_samples: int, seed: int) -> np.ndarray:
    t = np.arange(num_samples) / FILE_RATE
    return (0.3 * np.sin(2 * np.pi * (200 + 50 * seed) * t)).astype(np.float32)


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Manifest of 5 good tones, one corrupt file and one float wav holding NaNs; returns (manifest, bad id -> path)."""
    audio = tmp_path / "audio"
    audio.mkdir()
    utts = []
    for k, num_samples in enumerate([800, 1200, 1000, 1600, 400]):
        sf.write(audio / f"good{k}.wav", _tone(num_samples, k), FILE_RATE)
        utts.append(Utterance(f"good{k}", str(audio / f"good{k}.wav"), "abc"[: k % 3 + 1] + " d" * k))
    (audio / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(range(64)))
    nan_wave = _tone(900, 9)
    nan_wave[100] = np.nan
    sf.write(audio / "nan.wav", nan_wave, FILE_RATE, subtype="FLOAT")
    utts.insert(2, Utterance("corrupt", str(audio / "corrupt.wav"), "x", duration=0.1))
    utts.insert(5, Utterance("nan", str(audio / "nan.wav"), "y"))
    write_manifest(tmp_path / "train.jsonl", utts)
    return tmp_path / "train.jsonl", {"corrupt": str(audio / "corrupt.wav"), "nan": str(audio / "nan.wav")}


def test_bad_audio_warnings_name_the_files(corpus, caplog) -> None:
    # First in the file: the corrupt file makes load_audio import librosa (its fallback decoder, ~2 s), which the
    # forked loader workers of the next test then inherit.
    manifest, bad = corpus
    dataset = AsrDataset(read_manifest(manifest), SAMPLE_RATE)
    with caplog.at_level(logging.WARNING, logger="speechseq.data"):
        examples = [dataset[i] for i in range(len(dataset))]
    assert [e is None for e in examples] == [False, False, True, False, False, True, False]
    messages = [r.getMessage() for r in caplog.records if r.name == "speechseq.data"]
    assert len(messages) == 2
    assert bad["corrupt"] in messages[0] and "'corrupt'" in messages[0]
    assert bad["nan"] in messages[1] and "NaN" in messages[1]


def test_loader_with_workers_skips_and_counts_bad_audio(corpus) -> None:
    manifest, bad = corpus
    utts = read_manifest(manifest)
    durations = [u.duration or 0.1 for u in utts]  # the corrupt file has no readable header
    sampler = DurationBucketSampler(durations, max_duration_s=0.5, num_buckets=2, seed=1)
    loader = make_loader(AsrDataset(utts, SAMPLE_RATE, encode=_encode), sampler, num_workers=2, pad_id=-1)
    assert loader.persistent_workers and not loader.pin_memory
    batches = list(loader)
    assert len(batches) == len(sampler) >= 2
    assert sum(b.num_skipped for b in batches) == 2
    seen = sorted(i for b in batches for i in b.ids)
    assert seen == [f"good{k}" for k in range(5)]
    by_id = {u.id: u for u in utts}
    for b in batches:
        assert isinstance(b, Batch) and len(b) == len(b.ids) == b.waves.shape[0]
        for row, uid in enumerate(b.ids):
            num_samples = sf.info(by_id[uid].audio).frames * SAMPLE_RATE // FILE_RATE
            assert b.wave_lens[row] == num_samples
            assert b.texts[row] == by_id[uid].text
            assert b.tokens[row, : b.token_lens[row]].tolist() == _encode(by_id[uid].text)


def test_collate_pads_waves_with_zeros_and_tokens_with_pad_id() -> None:
    examples = [
        Example("a", torch.ones(5), torch.tensor([3, 4], dtype=torch.int64), "ab"),
        None,
        Example("b", torch.full((7,), 0.5), torch.tensor([5, 6, 7], dtype=torch.int64), "abc"),
        Example("c", torch.ones(2), torch.zeros(0, dtype=torch.int64), ""),
    ]
    batch = collate_asr(examples, pad_id=-1)
    assert batch.ids == ["a", "b", "c"] and batch.texts == ["ab", "abc", ""] and batch.num_skipped == 1
    assert batch.waves.shape == (3, 7) and batch.waves.dtype == torch.float32
    assert batch.wave_lens.tolist() == [5, 7, 2] and batch.wave_lens.dtype == torch.int64
    assert batch.waves[0, 5:].abs().sum() == 0 and batch.waves[2, 2:].abs().sum() == 0 and batch.waves[1].min() == 0.5
    assert batch.tokens.tolist() == [[3, 4, -1], [5, 6, 7], [-1, -1, -1]]
    assert batch.token_lens.tolist() == [2, 3, 0] and batch.tokens.dtype == torch.int64
    moved = batch.to("cpu")
    assert len(moved) == 3 and torch.equal(moved.waves, batch.waves)


def test_collate_of_only_skipped_items_is_an_empty_batch() -> None:
    batch = collate_asr([None, None])
    assert len(batch) == 0 and batch.num_skipped == 2
    assert batch.waves.shape == (0, 0) and batch.tokens.shape == (0, 0) and batch.wave_lens.shape == (0,)


def test_without_encoder_tokens_are_empty(corpus) -> None:
    manifest, _ = corpus
    example = AsrDataset(read_manifest(manifest), FILE_RATE)[0]
    assert example.tokens.shape == (0,) and example.tokens.dtype == torch.int64
    assert example.wave.shape == (800,) and example.wave.dtype == torch.float32


def test_speed_factor_changes_lengths(corpus) -> None:
    manifest, _ = corpus
    utts = read_manifest(manifest)
    plain = AsrDataset(utts, SAMPLE_RATE)[0].wave
    fast = AsrDataset(utts, SAMPLE_RATE, augment=WaveAugmentConfig(speed_factors=(1.25,)))[0].wave
    slow = AsrDataset(utts, SAMPLE_RATE, augment=WaveAugmentConfig(speed_factors=(0.8,)))[0].wave
    assert plain.numel() == 1600
    assert fast.numel() == 1280 and slow.numel() == 2000


def test_augmentation_is_reproducible_per_epoch_and_reaches_persistent_workers(corpus) -> None:
    manifest, _ = corpus
    utts = [u for u in read_manifest(manifest) if u.id.startswith("good")] * 3
    dataset = AsrDataset(utts, FILE_RATE, augment=WaveAugmentConfig(speed_factors=(0.8, 1.0, 1.25)), seed=5)

    def lengths(loader, epoch: int) -> list[int]:
        dataset.set_epoch(epoch)
        return [n for b in loader for n in b.wave_lens.tolist()]

    sampler = DurationBucketSampler([1.0] * len(utts), max_duration_s=4.0, shuffle=False)
    in_process = make_loader(dataset, sampler, num_workers=0)
    expected = [lengths(in_process, epoch) for epoch in range(2)]
    assert expected[0] != expected[1], "augmentation must change between epochs"
    assert len(set(expected[0])) > 5, "factors must vary across items"
    workers = make_loader(dataset, sampler, num_workers=2)
    assert [lengths(workers, epoch) for epoch in (0, 1, 0)] == [expected[0], expected[1], expected[0]]


def test_late_speed_factors_switch_at_their_epoch_in_persistent_workers(corpus) -> None:
    manifest, _ = corpus
    utts = [u for u in read_manifest(manifest) if u.id.startswith("good")] * 2
    cfg = WaveAugmentConfig(speed_factors=(1.0,), late_speed_factors=(1.25,), late_from_epoch=2)
    assert [cfg.speed_factors_at(e) for e in (0, 1, 2, 7)] == [(1.0,), (1.0,), (1.25,), (1.25,)]
    plain = [len(AsrDataset(utts, FILE_RATE)[i].wave) for i in range(len(utts))]
    fast = [len(AsrDataset(utts, FILE_RATE, augment=WaveAugmentConfig(speed_factors=(1.25,)))[i].wave)
            for i in range(len(utts))]
    assert all(f < p for f, p in zip(fast, plain))
    dataset = AsrDataset(utts, FILE_RATE, augment=cfg)
    sampler = DurationBucketSampler([1.0] * len(utts), max_duration_s=4.0, shuffle=False)
    loader = make_loader(dataset, sampler, num_workers=2)

    def lengths(epoch: int) -> list[int]:
        dataset.set_epoch(epoch)
        return sorted(n for b in loader for n in b.wave_lens.tolist())

    assert [lengths(e) for e in (0, 2, 1, 3)] == [sorted(plain), sorted(fast), sorted(plain), sorted(fast)]
    with pytest.raises(ConfigError, match="late_speed_factors"):
        WaveAugmentConfig(late_speed_factors=(0.0,))


def test_noise_is_mixed_at_the_requested_snr(corpus, tmp_path: Path) -> None:
    manifest, _ = corpus
    noise_wave = np.random.default_rng(0).standard_normal(3000).astype(np.float32) * 0.1
    sf.write(tmp_path / "noise.wav", noise_wave, FILE_RATE, subtype="FLOAT")
    write_manifest(tmp_path / "noise.jsonl", [Utterance("n", str(tmp_path / "noise.wav"), "")])
    cfg = WaveAugmentConfig(noise_manifest=str(tmp_path / "noise.jsonl"), noise_prob=1.0, snr_db_range=(6.0, 6.0))
    utts = read_manifest(manifest)
    clean = AsrDataset(utts, FILE_RATE)[3].wave
    noisy = AsrDataset(utts, FILE_RATE, augment=cfg)[3].wave
    assert noisy.shape == clean.shape
    snr_db = 10 * torch.log10(clean.pow(2).mean() / (noisy - clean).pow(2).mean())
    assert snr_db.item() == pytest.approx(6.0, abs=0.05)


def test_bad_augment_configs() -> None:
    with pytest.raises(ConfigError, match="noise_manifest"):
        WaveAugmentConfig(noise_prob=0.5)
    with pytest.raises(ConfigError, match="speed_factors"):
        WaveAugmentConfig(speed_factors=(1.0, 0.0))
    with pytest.raises(ConfigError, match="snr_db_range"):
        WaveAugmentConfig(snr_db_range=(20.0, 10.0))


def test_durations_of_the_fixture_match_headers(corpus) -> None:
    manifest, _ = corpus
    good = [u for u in read_manifest(manifest) if u.id.startswith("good")]
    assert utterance_durations(good) == pytest.approx([0.1, 0.15, 0.125, 0.2, 0.05])
