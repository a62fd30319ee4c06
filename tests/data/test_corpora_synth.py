"""Synthetic multi-voice corpus: voice discovery/splitting, sentence generator, engines, make_corpus."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import signal
import subprocess
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import soundfile as sf

from speechseq.data import synthetic
from speechseq.data.manifest import read_manifest
from speechseq.data.synthetic import (
    SynthCorpusConfig,
    SynthesisError,
    Voice,
    available_voices,
    generate_sentences,
    grammar_vocabulary,
    load_text_sentences,
    make_alignment_set,
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
from speechseq.audio.io import save_audio
from speechseq.errors import ConfigError

SENTENCES_TXT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "text" / "sentences.txt"
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
VARIANTS = ("m1", "f1", "m2", "f2", "m3", "f3", "m4", "f4", "m5", "f5", "m6", "m7", "klatt", "klatt2", "klatt3",
            "steph", "Andy", "linda", "david", "Annie", "max", "edward", "paul", "quincy")
# available_voices() with all 8 accents and 24 variants: the corpora of egs/synth_en depend on this exact list.
FULL_INSTALL_ESPEAK = (
    "en-us-m1-s150-p35 en-gb-f1-s165-p45 en-gb-scotland-m2-s180-p55 en-gb-x-rp-f2-s195-p65 en-gb-x-gbclan-m3-s150-p45 "
    "en-gb-x-gbcwmd-f3-s165-p55 en-029-m4-s180-p65 en-us-nyc-f4-s195-p35 en-us-f5-s150-p55 en-gb-m6-s165-p65 "
    "en-gb-scotland-m7-s180-p35 en-gb-x-rp-klatt-s195-p45 en-gb-x-gbclan-klatt2-s150-p65 "
    "en-gb-x-gbcwmd-klatt3-s165-p35 en-029-steph-s180-p45 en-us-nyc-Andy-s195-p55 en-us-david-s150-p35 "
    "en-gb-Annie-s165-p45 en-gb-scotland-max-s180-p55 en-gb-x-rp-edward-s195-p65 en-gb-x-gbclan-paul-s150-p45 "
    "en-gb-x-gbcwmd-quincy-s165-p55 en-029-m1-s180-p65 en-us-nyc-f1-s195-p35 en-us-f2-s150-p55 en-gb-m3-s165-p65 "
    "en-gb-scotland-f3-s180-p35 en-gb-x-rp-m4-s195-p45 en-gb-x-gbclan-f4-s150-p65 en-gb-x-gbcwmd-m5-s165-p35"
).split()


@contextlib.contextmanager
def _deadline(seconds: int) -> Iterator[None]:
    """Fail with TimeoutError instead of hanging (SIGALRM; the code under test is pure Python)."""
    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _fake_tts(calls: list[tuple[str, str]]):
    """A synthesize_many stand-in: a tone whose length (10 ms steps) is set by sha1(voice id, text)."""
    def synthesize_many(texts: list[str], voice: Voice, paths: list, sample_rate: int = 16000) -> list[float]:
        durations = []
        for text, path in zip(texts, paths):
            calls.append((voice.id, text))
            duration_s = _fake_duration_s(voice, text)
            t = np.arange(int(round(duration_s * sample_rate))) / sample_rate
            save_audio(path, (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sample_rate)
            durations.append(duration_s)
        return durations

    return synthesize_many


def _fake_duration_s(voice: Voice, text: str) -> float:
    return 0.1 + 0.01 * (hashlib.sha1(f"{voice.id} {text}".encode()).digest()[0] % 50)


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


@pytest.mark.parametrize("num_accents,num_variants", [(8, 24), (7, 24), (1, 4), (2, 3), (4, 5), (3, 1), (8, 2)])
def test_available_voices_finishes_for_any_espeak_install(monkeypatch: pytest.MonkeyPatch, num_accents: int,
                                                           num_variants: int) -> None:
    # the old pair walk reached only A*V/gcd(A+1, V) pairs and looped forever on e.g. 7 x 24 or 2 x 3
    names = frozenset(ACCENTS[:num_accents]) | {"+" + v for v in VARIANTS[:num_variants]}
    monkeypatch.setattr(synthetic, "_installed", lambda engine: names if engine == "espeak-ng" else frozenset())
    with _deadline(10):
        voices = available_voices()
    assert len(voices) == min(30, num_accents * num_variants)
    pairs = [v.name for v in voices]
    assert len(set(pairs)) == len(pairs) and all(v.engine == "espeak-ng" for v in voices)
    accents = [p.split("+")[0] for p in pairs]
    assert len(set(accents)) == num_accents
    if num_accents > 1:
        assert all(a != b for a, b in zip(accents, accents[1:])), "consecutive voices change accent"
    if (num_accents, num_variants) == (8, 24):
        assert [v.id.removeprefix("espeak-") for v in voices] == FULL_INSTALL_ESPEAK


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


@pytest.mark.parametrize("split", ["dev", "test"])
def test_make_corpus_rejects_held_out_utterances_without_voices(tmp_path: Path, split: str) -> None:
    cfg = SynthCorpusConfig(num_train=5, num_dev=2, num_test=2, num_dev_voices=1, num_test_voices=1)
    cfg = SynthCorpusConfig(**{**cfg.__dict__, f"num_{split}_voices": 0})
    with pytest.raises(ConfigError, match=f"num_{split}=2 .*num_{split}_voices=0"):
        make_corpus(tmp_path, cfg)
    assert not (tmp_path / "wav").exists()


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


def test_connected_alignment_set_reports_festival_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a voice festival lacks: it exits non-zero, and its stderr (not "no sentence gave word times") is the error
    monkeypatch.setattr(synthetic, "_installed", lambda engine: frozenset({"no_such_voice"}))
    with pytest.raises(SynthesisError, match="exit 255.*unbound variable"):
        make_connected_alignment_set(tmp_path, ["nine six three"], Voice("festival", "no_such_voice"))


def test_connected_alignment_set_timeout_grows_with_sentences(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              voices: list[Voice]) -> None:
    timeouts = []

    def hang(argv: list[str], **kwargs: object) -> None:
        timeouts.append(kwargs["timeout"])
        raise subprocess.TimeoutExpired(argv, kwargs["timeout"], stderr="still synthesizing")

    voice = next(v for v in voices if v.engine == "festival")
    monkeypatch.setattr(subprocess, "run", hang)
    with pytest.raises(SynthesisError, match="timed out after 80 s.*still synthesizing"):
        make_connected_alignment_set(tmp_path, ["one two"] * 5, voice)
    assert timeouts == [80]


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


def test_make_word_set_rerun_with_other_words_never_reuses_their_audio(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(synthetic, "synthesize_many", _fake_tts(calls))
    voice = Voice("espeak-ng", "en-us+m3", 165, 45)
    first = read_manifest(make_word_set(tmp_path, ["seven", "two"], [voice], sample_rate=8000, name="digits"))
    second = read_manifest(make_word_set(tmp_path, ["two", "nine"], [voice], sample_rate=8000, name="digits"))
    for u in first + second:  # each wav holds the word of its line (a positional name gave "two" seven's audio)
        assert u.duration == pytest.approx(_fake_duration_s(voice, u.text))
        assert voice.id in Path(u.audio).parts
    assert calls == [(voice.id, "seven"), (voice.id, "two"), (voice.id, "nine")], "'two' is reused, not redone"
    repeated = read_manifest(make_word_set(tmp_path / "rep", ["one", "one"], [voice], name="digits", num_jobs=2))
    assert len(repeated) == 2 and repeated[0].audio == repeated[1].audio and calls[-1] == (voice.id, "one")
    assert len(calls) == 4, "a repeated word is synthesized once"


def test_make_alignment_set_rerun_with_other_sentences_or_voice(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(synthetic, "synthesize_many", _fake_tts(calls))
    voice_a, voice_b = Voice("flite", "slt"), Voice("flite", "awb")
    runs = [(["one two"], voice_a), (["three four two"], voice_a), (["three four two"], voice_b)]
    for sentences, voice in runs:
        (utt,) = read_manifest(make_alignment_set(tmp_path, sentences, voice, gap_s=(0.05, 0.05)))
        for word, start_s, end_s in utt.extra["words"]:
            assert end_s - start_s == pytest.approx(_fake_duration_s(voice, word), abs=1e-3), (voice.id, word)
    assert calls == [(voice_a.id, w) for w in ("one", "two", "four", "three")] + \
        [(voice_b.id, w) for w in ("four", "three", "two")]


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
