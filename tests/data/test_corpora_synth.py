"""Synthetic multi-voice corpus: voice discovery/splitting, sentence generator, engines, make_corpus."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechseq.data.manifest import read_manifest
from speechseq.data.synthetic import (
    SynthCorpusConfig,
    SynthesisError,
    Voice,
    available_voices,
    generate_sentences,
    grammar_vocabulary,
    load_text_sentences,
    make_connected_alignment_set,
    make_corpus,
    make_word_set,
    random_prosody_variants,
    scale_config,
    split_sentences,
    split_voices,
    synthesize,
    train_variants,
    trim_silence,
)
from speechseq.errors import ConfigError

SENTENCES_TXT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "text" / "sentences.txt"


@pytest.fixture(scope="module")
def voices() -> list[Voice]:
    return available_voices()


def test_voice_id_is_stable_and_file_name_safe() -> None:
    assert Voice("espeak-ng", "en-gb-scotland+m1", 165, 45).id == "espeak-en-gb-scotland-m1-s165-p45"
    assert Voice("flite", "slt").id == "flite-slt"
    assert Voice("festival", "kal_diphone").id == "festival-kal_diphone"
    assert Voice("flite", "kal16").speaker == Voice("festival", "kal_diphone").speaker == "kal"
    assert Voice("espeak-ng", "en-us+m3").speaker == Voice("espeak-ng", "en-029+m3", 150, 35).speaker


def test_available_voices_cover_all_engines(voices: list[Voice]) -> None:
    assert len(voices) >= 25
    ids = [v.id for v in voices]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", i) for i in ids)
    assert {v.engine for v in voices} == {"espeak-ng", "flite", "festival"}
    accents = {v.name.split("+")[0] for v in voices if v.engine == "espeak-ng"}
    assert {"en-us", "en-gb", "en-gb-scotland", "en-029"} <= accents
    assert available_voices() == voices  # deterministic order


@pytest.mark.parametrize("num_dev,num_test", [(3, 4), (2, 3), (1, 1), (5, 6)])
def test_split_voices_disjoint_and_mixed(voices: list[Voice], num_dev: int, num_test: int) -> None:
    for seed in range(3):
        train, dev, test = split_voices(voices, num_dev, num_test, seed)
        assert (len(dev), len(test)) == (num_dev, num_test)
        assert not set(train) & set(dev) and not set(train) & set(test) and not set(dev) & set(test)
        spk = [{v.speaker for v in vs} for vs in (train, dev, test)]
        assert not spk[0] & spk[1] and not spk[0] & spk[2] and not spk[1] & spk[2]
        assert {v.engine for v in train} == {"espeak-ng", "flite", "festival"}
        if num_test >= 3:
            assert {v.engine for v in test} == {"espeak-ng", "flite", "festival"}
        if num_dev >= 2:
            assert {v.engine for v in dev} >= {"espeak-ng", "flite"}
        assert split_voices(voices, num_dev, num_test, seed) == (train, dev, test)


def test_split_voices_rejects_too_many(voices: list[Voice]) -> None:
    with pytest.raises(ConfigError, match="split_voices"):
        split_voices(voices[:3], 2, 2)


def test_generator_deterministic_and_well_formed() -> None:
    a = generate_sentences(3000, seed=7)
    assert a == generate_sentences(3000, seed=7)
    assert a != generate_sentences(3000, seed=8)
    assert len(a) == 3000 and len(set(a)) >= 2990
    for s in a:
        assert re.fullmatch(r"[a-z]+( [a-z]+)*", s), s
        assert 3 <= len(s.split()) <= 10, s
    used = {w for s in a for w in s.split()}
    assert 150 <= len(grammar_vocabulary()) <= 250
    assert used <= set(grammar_vocabulary())
    assert len(used) >= 150


def test_split_sentences_held_out() -> None:
    pool = generate_sentences(700, seed=0) + generate_sentences(50, seed=0)  # some exact repeats
    train, dev, test = split_sentences(pool, 650, 40, 30, seed=3)
    assert (len(train), len(dev), len(test)) == (650, 40, 30)
    assert not set(train) & set(dev) and not set(train) & set(test) and not set(dev) & set(test)
    assert len(set(dev)) == 40 and len(set(test)) == 30
    # a short pool: train cycles through the rest, dev/test stay disjoint
    train, dev, test = split_sentences(pool[:30], 100, 5, 5, seed=0)
    assert len(train) == 100 and len(set(train)) == 20 and not set(train) & (set(dev) | set(test))
    with pytest.raises(ConfigError):
        split_sentences(pool[:5], 10, 3, 3)


def test_text_file_sentences(tmp_path: Path) -> None:
    f = tmp_path / "s.txt"
    f.write_text("Hello, World!\nhello world\nI have 42 apples.\n\n" + "word " * 30 + "\nok then\n")
    assert load_text_sentences(f, max_words=20) == ["hello world", "i have forty two apples", "ok then"]
    assert load_text_sentences(f, max_words=20, min_words=3) == ["i have forty two apples"]
    real = load_text_sentences(SENTENCES_TXT, max_words=12)
    assert len(real) > 1000 and all(len(s.split()) <= 12 for s in real)
    train, dev, test = split_sentences(real, 300, 20, 20, seed=1)
    assert not set(train) & (set(dev) | set(test))


def test_trim_silence_keeps_margin() -> None:
    sr = 16000
    t = np.arange(int(0.5 * sr)) / sr
    wave = np.concatenate([np.zeros(sr), 0.5 * np.sin(2 * np.pi * 220 * t), np.zeros(sr)]).astype(np.float32)
    out = trim_silence(wave, sr)
    assert 0.69 <= len(out) / sr <= 0.72
    assert np.all(out[: int(0.09 * sr)] == 0) and np.all(out[-int(0.09 * sr):] == 0)
    assert trim_silence(np.zeros(1000, np.float32), sr).shape == (1000,)


@pytest.mark.parametrize("voice", [Voice("espeak-ng", "en-gb-scotland+m1", 165, 45), Voice("flite", "slt"),
                                   Voice("festival", "kal_diphone"), Voice("festival", "cmu_us_slt_arctic_hts")],
                         ids=lambda v: v.engine)
def test_each_engine_writes_16k_mono_speech(tmp_path: Path, voice: Voice) -> None:
    path = tmp_path / "sub" / f"{voice.id}.wav"
    duration_s = synthesize("turn on the kitchen lights at half past seven", voice, path)
    info = sf.info(str(path))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert 0.3 <= duration_s <= 10.0
    assert abs(info.frames / 16000 - duration_s) < 1e-3
    wave, _ = sf.read(str(path), dtype="float32")
    assert np.sqrt(np.mean(wave**2)) > 0.01
    assert np.max(np.abs(wave)) <= 0.96


def test_synthesize_errors_name_engine_and_voice(tmp_path: Path) -> None:
    with pytest.raises(SynthesisError, match="flite.*no_such_voice"):
        synthesize("hello there", Voice("flite", "no_such_voice"), tmp_path / "x.wav")
    with pytest.raises(SynthesisError, match="espeak-ng.*en-us\\+nope"):
        synthesize("hello there", Voice("espeak-ng", "en-us+nope"), tmp_path / "x.wav")
    assert not (tmp_path / "x.wav").exists()


def test_scale_config() -> None:
    tiny = scale_config("tiny")
    assert (tiny.num_train, tiny.num_dev, tiny.num_test) == (4000, 100, 100) and tiny.train_variants
    assert scale_config("small").num_train == 10000 and scale_config("full").num_train == 60000
    with pytest.raises(ConfigError, match="tiny, small, full"):
        scale_config("huge")


def test_make_corpus_micro_and_idempotent(tmp_path: Path, voices: list[Voice]) -> None:
    chosen = [v for v in voices if v.engine == "espeak-ng"][:3] + [v for v in voices if v.engine == "flite"][:1]
    cfg = SynthCorpusConfig(num_train=5, num_dev=2, num_test=2, num_dev_voices=1, num_test_voices=1,
                            voices=tuple(v.id for v in chosen))
    out = tmp_path / "corpus"
    manifests = make_corpus(out, cfg, num_jobs=2, seed=0)
    assert manifests == {s: out.resolve() / f"{s}.jsonl" for s in ("train", "dev", "test")}
    utts = {s: read_manifest(p) for s, p in manifests.items()}
    assert [len(utts[s]) for s in ("train", "dev", "test")] == [5, 2, 2]
    speakers = {s: {u.speaker for u in us} for s, us in utts.items()}
    assert not speakers["train"] & speakers["dev"] and not speakers["train"] & speakers["test"]
    texts = {s: {u.text for u in us} for s, us in utts.items()}
    assert not texts["train"] & (texts["dev"] | texts["test"])
    for s, us in utts.items():
        for u in us:
            assert Path(u.audio).parent == out.resolve() / "wav" / s and u.language == "en"
            assert abs(sf.info(u.audio).frames / 16000 - u.duration) < 1e-3
    row = json.loads(manifests["dev"].read_text().splitlines()[0])
    assert not Path(row["audio"]).is_absolute() and set(row) == {"id", "audio", "text", "duration", "speaker",
                                                                 "language"}
    # second run: nothing re-synthesized, identical manifests; a deleted wav is re-made
    mtimes = {u.audio: Path(u.audio).stat().st_mtime_ns for us in utts.values() for u in us}
    before = {s: p.read_text() for s, p in manifests.items()}
    victim = Path(utts["train"][0].audio)
    victim.unlink()
    make_corpus(out, cfg, num_jobs=1, seed=0)
    assert {s: p.read_text() for s, p in manifests.items()} == before
    assert victim.exists()
    assert all(Path(a).stat().st_mtime_ns == t for a, t in mtimes.items() if a != str(victim))


def test_make_corpus_rejects_unknown_voice(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not-a-voice"):
        make_corpus(tmp_path, SynthCorpusConfig(voices=("not-a-voice",)))


@pytest.mark.slow
def test_prepare_cli_synth_tiny(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from speechseq.bin.prepare import main

    assert main(["synth_en", "--out", str(tmp_path), "--scale", "tiny", "--num-jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"train\s+4000 utts", out) and re.search(r"test\s+100 utts", out)


def test_connected_alignment_set_has_festival_word_times(tmp_path: Path, voices: list[Voice]) -> None:
    voice = next(v for v in voices if v.engine == "festival")
    texts = ["the big orange towel is under the cabinet", "nine six three"]
    manifest = make_connected_alignment_set(tmp_path, texts, voice)
    utts = read_manifest(manifest)
    assert [u.text for u in utts] == texts
    for u in utts:
        words = u.extra["words"]
        assert [w[0] for w in words] == u.text.split()
        starts, ends = [w[1] for w in words], [w[2] for w in words]
        assert all(s < e for s, e in zip(starts, ends)), words
        assert starts == sorted(starts) and 0 <= starts[0] and ends[-1] <= u.duration + 1e-3
        wave, sr = sf.read(u.audio)
        assert sr == 16000 and abs(len(wave) / sr - u.duration) < 1e-3
    with pytest.raises(SynthesisError, match="needs a festival voice"):
        make_connected_alignment_set(tmp_path, texts, next(v for v in voices if v.engine == "flite"))


def test_train_variants_expand_only_flite_and_festival(voices: list[Voice]) -> None:
    train, dev, test = split_voices(voices, 3, 4)
    expanded = train_variants(train)
    assert [v for v in expanded if v.engine == "espeak-ng"] == [v for v in train if v.engine == "espeak-ng"]
    for v in train:
        if v.engine != "espeak-ng":
            variants = [x for x in expanded if (x.engine, x.name) == (v.engine, v.name)]
            assert v in variants and len(variants) >= 3 and len(set(variants)) == len(variants)
            assert all(x.speaker == v.speaker for x in variants)
            assert v.engine == "flite" or all(x.pitch is None for x in variants)  # festival takes no pitch
    held = {v.speaker for v in dev + test}
    assert not {v.speaker for v in expanded} & held


def test_make_corpus_train_variants_leave_dev_and_test_unchanged(tmp_path: Path, voices: list[Voice]) -> None:
    chosen = [v for v in voices if v.engine == "espeak-ng"][:2] + [v for v in voices if v.engine == "flite"][:2]
    base = dict(num_train=8, num_dev=2, num_test=2, num_dev_voices=1, num_test_voices=1,
                voices=tuple(v.id for v in chosen))
    plain = make_corpus(tmp_path / "plain", SynthCorpusConfig(**base, train_variants=False), num_jobs=2)
    varied = make_corpus(tmp_path / "varied", SynthCorpusConfig(**base), num_jobs=2)
    strip = lambda path: [(u.text, u.speaker) for u in read_manifest(path)]  # noqa: E731
    assert strip(plain["dev"]) == strip(varied["dev"]) and strip(plain["test"]) == strip(varied["test"])
    assert len({u.speaker for u in read_manifest(varied["train"])}) > len({u.speaker for u in
                                                                          read_manifest(plain["train"])})


def test_make_word_set_every_voice_says_every_word(tmp_path: Path, voices: list[Voice]) -> None:
    chosen = [v for v in voices if v.engine == "espeak-ng"][:1] + [Voice("flite", "kal16", 150, 225)]
    manifest = make_word_set(tmp_path, ["seven", "two"], chosen, sample_rate=8000, name="digits")
    utts = read_manifest(manifest)
    assert manifest.name == "digits.jsonl" and len(utts) == 4
    assert {(u.speaker, u.text) for u in utts} == {(v.id, w) for v in chosen for w in ("seven", "two")}
    for u in utts:
        info = sf.info(u.audio)
        assert info.samplerate == 8000 and abs(info.frames / 8000 - u.duration) < 1e-3 and 0.2 < u.duration < 2.0
    mtimes = [Path(u.audio).stat().st_mtime_ns for u in utts]
    assert read_manifest(make_word_set(tmp_path, ["seven", "two"], chosen, name="digits")) == utts
    assert [Path(u.audio).stat().st_mtime_ns for u in utts] == mtimes


def test_random_prosody_variants_are_new_distinct_and_reproducible() -> None:
    base = [Voice("espeak-ng", "en-us+m3", 165, 45), Voice("flite", "slt"), Voice("festival", "kal_diphone")]
    variants = random_prosody_variants(base, 3, seed=7)
    assert len(variants) == 9
    assert [(v.engine, v.name) for v in variants] == [(b.engine, b.name) for b in base for _ in range(3)]
    ids = [v.id for v in variants]
    assert len(set(ids)) == 9 and not set(ids) & {b.id for b in base}
    assert all(120 <= v.speed_wpm <= 220 for v in variants)
    assert all(v.pitch is None for v in variants if v.engine == "festival")  # festival takes no pitch target
    assert all(80 <= v.pitch <= 240 for v in variants if v.engine == "flite")
    assert random_prosody_variants(base, 3, seed=7) == variants
    assert random_prosody_variants(base, 3, seed=8) != variants


def test_make_word_set_with_variants_speaks_every_word_per_variant(tmp_path: Path, voices: list[Voice]) -> None:
    chosen = [v for v in voices if v.engine == "espeak-ng"][:1]
    utts = read_manifest(make_word_set(tmp_path, ["two"], chosen, name="digits", variants=2, seed=3))
    assert len(utts) == 3 and len({u.speaker for u in utts}) == 3
    durations = sorted(u.duration for u in utts)
    assert durations[0] < durations[-1]  # different speaking rates give different lengths
