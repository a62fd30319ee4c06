"""The public inference API: ``speechseq.load_asr(model_dir).transcribe(...)`` on a debug model trained on FSDD.

The module fixture trains ``recipes/conf/debug/ctc_debug.yaml`` for a few hundred tiny steps (a few seconds) on 40
real FSDD digits (8 kHz files, resampled to the model's 16 kHz), enough for non-empty, input-dependent hypotheses so
that the equalities below compare real token sequences.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import soundfile as sf

import speechseq
from speechseq.audio.io import resample
from speechseq.config import load_config
from speechseq.errors import SpeechseqError
from speechseq.infer.recognizer import Recognizer, Transcript
from speechseq.text.tokenizer import TokenizerConfig, train_tokenizer
from speechseq.train.asr import AsrExperimentConfig, train_asr

ROOT = Path(__file__).resolve().parents[2]
DEBUG = ROOT / "recipes" / "conf" / "debug" / "ctc_debug.yaml"
MODEL_FILES = ("config.yaml", "tokenizer.model", "model.pt")
# 200 steps at lr 5e-3 (~3-6 s on 2 CPU cores): after the debug config's 6 steps every hypothesis is empty
TRAIN_OVERRIDES = ["train.max_steps=200", "train.lr=0.005", "train.checkpoint_every=100", "train.log_every=100"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, fsdd_tiny) -> dict:
    """Train the debug model; the training manifest is deleted afterwards. Returns paths of the run."""
    root = tmp_path_factory.mktemp("recognizer")
    manifest = root / "train.jsonl"
    shutil.copyfile(fsdd_tiny["train"], manifest)  # our own copy: deleted below
    audio = [json.loads(line)["audio"] for line in manifest.read_text().splitlines()]
    cfg = load_config(DEBUG, AsrExperimentConfig, TRAIN_OVERRIDES)
    result = train_asr(cfg, root / "exp", manifest, None, device="cpu")
    assert result.steps == 200 and result.model_path == root / "exp" / "model.pt"
    manifest.unlink()
    # digits in a mixed order of lengths (the recognizer sorts by length internally)
    picks = [audio[i] for i in (0, 13, 5, 22, 31, 9, 38)]
    return {"exp": root / "exp", "audio": picks}


@pytest.fixture(scope="module")
def asr(trained) -> Recognizer:
    return speechseq.load_asr(trained["exp"])


_RECORDERS: list[list[str]] = []


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _RECORDERS and isinstance(args[0], (str, bytes, Path)):
        path = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
        _RECORDERS[-1].append(path)


@contextmanager
def opened_files() -> Iterator[list[str]]:
    """Record the paths the process opens (Python audit "open" events) inside the block."""
    if not getattr(sys, "_speechseq_test_audit", False):  # hooks cannot be removed: install once per process
        sys.addaudithook(_audit)
        sys._speechseq_test_audit = True
    opened: list[str] = []
    _RECORDERS.append(opened)
    try:
        yield opened
    finally:
        _RECORDERS.remove(opened)


def _library_file(path: Path) -> bool:
    """Files any Python process may open: the interpreter, installed packages, this repo's code, /proc, /sys."""
    roots = [Path(sys.prefix), Path(sys.base_prefix), ROOT, Path("/proc"), Path("/sys"), Path("/dev")]
    return any(path.is_relative_to(r.resolve()) for r in roots)


def test_load_reads_only_the_model_dir(trained, asr, tmp_path):
    release = tmp_path / "release"
    release.mkdir()
    for name in MODEL_FILES:  # the three files alone make a model directory (no checkpoints/, no data)
        shutil.copyfile(trained["exp"] / name, release / name)
    wave, sr = sf.read(trained["audio"][0], dtype="float32")
    with opened_files() as opened:
        moved = speechseq.load_asr(release)
        text = moved.transcribe((wave, sr))[0].text
    paths = {Path(p).resolve() for p in opened}
    outside = sorted(str(p) for p in paths if not p.is_relative_to(release.resolve()) and not _library_file(p))
    assert outside == [], f"load_asr/transcribe read files outside the model dir: {outside}"
    assert {(release / "model.pt").resolve(), (release / "tokenizer.model").resolve()} <= paths
    assert not (trained["exp"].parent / "train.jsonl").exists()
    assert text == asr.transcribe((wave, sr))[0].text


def test_path_array_and_resampled_array_agree(trained, asr):
    texts = []
    for path in trained["audio"][:4]:
        wave, sr = sf.read(path, dtype="float32")
        assert sr == 8000
        from_path = asr.transcribe(path)[0]
        from_array = asr.transcribe((wave, 8000))[0]
        from_16k = asr.transcribe((resample(wave, 8000, 16000), 16000))[0]
        assert from_path.text == from_array.text == from_16k.text
        assert from_path.tokens == from_array.tokens
        texts.append(from_path.text)
    assert any(texts), "model produced only empty hypotheses: the comparison above is vacuous"


def test_integer_pcm_channel_layouts_and_strided_arrays_read_like_the_file(trained, asr):
    path = trained["audio"][0]
    pcm, sr = sf.read(path, dtype="int16")
    from_path = asr.transcribe(path)[0]
    assert from_path.text
    u8 = ((pcm.astype(np.int32) >> 8) + 128).astype(np.uint8)
    same_as_file = {"int16": pcm, "int32": pcm.astype(np.int32) << 16,
                    "(samples, 16 channels)": np.repeat(pcm[:, None], 16, axis=1), "(2 channels, samples)": np.stack([pcm, pcm])}
    for name, wave in same_as_file.items():
        assert asr.transcribe((wave, sr))[0].tokens == from_path.tokens, name
    assert asr.transcribe((u8, sr))[0].tokens == asr.transcribe(((u8 - 128.0) / 128.0, sr))[0].tokens  # 8-bit: centred
    reversed_view = pcm[::-1]  # a negative-stride view decodes like its contiguous copy
    assert asr.transcribe((reversed_view, sr))[0].tokens == asr.transcribe((reversed_view.copy(), sr))[0].tokens
    with pytest.raises(SpeechseqError, match="dtype"):
        asr.transcribe((np.array(["a", "b"]), sr))


def test_lm_over_another_tokenizer_and_bad_align_batch_are_refused(trained, asr, tmp_path):
    from speechseq.text.ngram import LmFusion, TokenLmScorer, estimate_from_texts
    from speechseq.text.tokenizer import Tokenizer

    texts = ["the quick brown fox", "jumps over the lazy dog", "zero one two three"]
    other = train_tokenizer(texts * 5, tmp_path, TokenizerConfig("char"))
    assert isinstance(other, Tokenizer)
    lm = LmFusion(TokenLmScorer(estimate_from_texts(texts, other, 2), other), 0.5, 1.0)
    with pytest.raises(SpeechseqError, match="another tokenizer"):
        asr.transcribe(trained["audio"][0], method="beam", lm=lm)
    with pytest.raises(SpeechseqError, match="batch_size"):
        asr.align([trained["audio"][0]], ["one"], batch_size=0)


def test_list_keeps_input_order_and_batch_size_does_not_matter(trained, asr):
    inputs = trained["audio"]
    lengths = [sf.info(p).frames for p in inputs]
    assert lengths != sorted(lengths)  # the recognizer reorders internally; results must come back in input order
    one = asr.transcribe(inputs, batch_size=1)
    four = asr.transcribe(inputs, batch_size=4)
    assert len(one) == len(four) == len(inputs)
    assert [r.tokens for r in one] == [r.tokens for r in four]
    for a, b in zip(one, four):
        assert math.isclose(a.score, b.score, rel_tol=1e-4, abs_tol=1e-3)
    singles = [asr.transcribe(p)[0] for p in inputs]
    assert [r.text for r in one] == [r.text for r in singles]
    assert len({r.text for r in one}) > 1, "all hypotheses equal: input order is not tested"
    assert asr.transcribe([]) == []


def test_word_timestamps(trained, asr):
    a, sr = sf.read(trained["audio"][1], dtype="float32")
    b, _ = sf.read(trained["audio"][3], dtype="float32")
    two_digits = (np.concatenate([a, np.zeros(sr // 4, np.float32), b]), sr)
    inputs = [*trained["audio"][:4], two_digits]
    results = asr.transcribe(inputs, word_timestamps=True)
    durations = [sf.info(p).frames / sf.info(p).samplerate for p in trained["audio"][:4]]
    durations.append(len(two_digits[0]) / sr)
    for r, duration_s in zip(results, durations):
        assert r.words is not None
        assert " ".join(w.word for w in r.words) == r.text
        previous_end = 0.0
        for w in r.words:
            assert previous_end <= w.start_s <= w.end_s <= duration_s + 1e-6, (r.words, duration_s)
            previous_end = w.end_s
    assert any(r.words for r in results), "no words at all: the time checks above are vacuous"
    assert asr.transcribe(inputs[0])[0].words is None  # only computed on request


def test_single_input_returns_a_list_of_one(trained, asr):
    path = trained["audio"][2]
    wave, sr = sf.read(path, dtype="float32")
    for item in (path, Path(path), (wave, sr)):
        out = asr.transcribe(item)
        assert isinstance(out, list) and len(out) == 1 and isinstance(out[0], Transcript)
    assert asr.transcribe(path)[0] == asr.transcribe([path])[0]


def test_beam_search(trained, asr):
    greedy = asr.transcribe(trained["audio"], method="greedy")
    beam = asr.transcribe(trained["audio"], method="beam", beam_size=4, word_timestamps=True)
    assert len(beam) == len(greedy)
    for g, b in zip(greedy, beam):
        assert asr.tokenizer.decode(b.tokens) == b.text
        assert " ".join(w.word for w in b.words) == b.text
        # a prefix's beam score sums over its alignments: never below the single best path's log-probability
        assert b.score <= 1e-6 and b.score >= g.score - 1e-3
    assert any(b.text for b in beam)


def test_tokenizer_hash_mismatch_names_the_file(trained, tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    for name in MODEL_FILES:
        shutil.copyfile(trained["exp"] / name, model_dir / name)
    other = train_tokenizer(["one two three", "four five six seven"], tmp_path / "other", TokenizerConfig("char"))
    shutil.copyfile(other.model_path, model_dir / "tokenizer.model")
    with pytest.raises(SpeechseqError, match="tokenizer.model") as info:
        speechseq.load_asr(model_dir)
    assert str(model_dir) in str(info.value)


def test_missing_model_pt_names_the_folder(trained, tmp_path):
    model_dir = tmp_path / "half_trained"
    model_dir.mkdir()
    for name in ("config.yaml", "tokenizer.model"):
        shutil.copyfile(trained["exp"] / name, model_dir / name)
    with pytest.raises(SpeechseqError, match="model.pt") as info:
        speechseq.load_asr(model_dir)
    assert str(model_dir) in str(info.value)


def test_int8_decoding_follows_the_fp32_model(trained, asr):
    fp32 = asr.transcribe(trained["audio"], method="greedy")
    q = speechseq.load_asr(trained["exp"], int8=True)
    assert type(q.model.head).__module__ != type(asr.model.head).__module__  # the head is quantized
    assert type(asr.model.head).__module__.startswith("torch.nn")  # the fp32 recognizer is left alone
    int8 = q.transcribe(trained["audio"], method="greedy", word_timestamps=True)
    assert [t.text for t in int8] == [t.text for t in fp32]
    assert [t.score for t in int8] == pytest.approx([t.score for t in fp32], rel=0.1, abs=0.5)
    assert all(t.words is not None for t in int8)
    with pytest.raises(SpeechseqError, match="CPU only"):
        speechseq.load_asr(trained["exp"], device="cuda", int8=True)


def test_bf16_decoding_runs_the_network_in_bf16_and_follows_the_fp32_model(trained, asr):
    import torch

    fp32 = asr.transcribe(trained["audio"], method="greedy")
    half = speechseq.load_asr(trained["exp"], bf16=True)
    seen = []
    hook = half.model.encoder.blocks[0].ff1.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    out = half.transcribe(trained["audio"], method="greedy", word_timestamps=True)
    hook.remove()
    assert seen and set(seen) == {torch.bfloat16}
    assert [t.text for t in out] == [t.text for t in fp32]
    assert [t.score for t in out] == pytest.approx([t.score for t in fp32], rel=0.1, abs=0.5)
    assert all(isinstance(t.score, float) and t.words is not None for t in out)
    assert [w.word for w in half.align(trained["audio"][:2], [t.text for t in fp32[:2]])[0]] == fp32[0].text.split()
    assert not asr.bf16 and asr.model.encoder.blocks[0].ff1.net[0].weight.dtype == torch.float32
    with pytest.raises(SpeechseqError, match="not both"):
        speechseq.load_asr(trained["exp"], int8=True, bf16=True)


def test_bf16_without_native_instructions_warns_that_it_is_slow(trained, monkeypatch, caplog):
    import logging

    from speechseq.train import loop

    monkeypatch.setattr(loop, "bf16_native", lambda device: False)
    with caplog.at_level(logging.WARNING, logger="speechseq.infer"):
        speechseq.load_asr(trained["exp"])
        assert not caplog.records  # fp32 says nothing
        speechseq.load_asr(trained["exp"], bf16=True)
    assert len(caplog.records) == 1 and "no native bf16" in caplog.records[0].getMessage()
    assert str(trained["exp"]) in caplog.records[0].getMessage()
    monkeypatch.setattr(loop, "bf16_native", lambda device: True)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="speechseq.infer"):
        speechseq.load_asr(trained["exp"], bf16=True)
    assert not caplog.records


def test_test_time_warps_pick_the_lowest_entropy_factor_per_utterance(trained, asr):
    import torch

    inputs = trained["audio"]
    plain = asr.transcribe(inputs)
    assert [r.text for r in asr.transcribe(inputs, warps=[1.0])] == [r.text for r in plain]
    assert all(r.warp is None for r in plain)
    warps = [0.9, 0.95, 1.05, 1.1]
    chosen = asr.transcribe(inputs, batch_size=4, warps=warps)
    # each utterance alone: the factor whose CTC posteriors have the lowest mean entropy, decoded at that factor
    for path, got in zip(inputs, chosen):
        wave = torch.from_numpy(asr._load(path, path))[None]
        lens = torch.tensor([wave.shape[1]])
        entropy = []
        for w in warps:
            with torch.no_grad():
                out = asr.model(wave, lens, warp=torch.tensor([w]))
            entropy.append(float(-(out.log_probs.exp() * out.log_probs).sum(-1).mean()))
        best = warps[int(np.argmin(entropy))]
        assert got.warp == best
        assert got.text == asr.transcribe(path, warps=[best])[0].text
    assert len({r.warp for r in chosen}) > 1, "one factor for every utterance: the per-utterance choice is not tested"
    # one encoder pass per factor and batch, none repeated at the chosen factors
    passes = []
    handle = asr.model.encoder.register_forward_hook(lambda *args: passes.append(1))
    try:
        again = asr.transcribe(inputs, batch_size=len(inputs), warps=warps)
    finally:
        handle.remove()
    assert len(passes) == len(warps) and [r.text for r in again] == [r.text for r in chosen]
    with pytest.raises(SpeechseqError, match="warps"):
        asr.transcribe(inputs, warps=[])
    with pytest.raises(SpeechseqError, match="warps"):
        asr.transcribe(inputs, warps=[1.0, 0.0])


def test_speaker_level_warps_choose_one_factor_per_group_from_its_mean_entropy(trained, asr):
    import torch

    inputs = trained["audio"]
    warps = [0.85, 0.95, 1.05, 1.15]
    groups = ["a", "b", "a", "b", "a", "c", "b"]
    entropy = np.zeros((len(inputs), len(warps)))  # each utterance alone, at each factor
    for i, path in enumerate(inputs):
        wave = torch.from_numpy(asr._load(path, path))[None]
        for k, w in enumerate(warps):
            with torch.no_grad():
                out = asr.model(wave, torch.tensor([wave.shape[1]]), warp=torch.tensor([w]))
            entropy[i, k] = float(-(out.log_probs.exp() * out.log_probs).sum(-1).mean())
    expect = {g: warps[int(np.argmin(entropy[[i for i, h in enumerate(groups) if h == g]].mean(0)))] for g in "abc"}
    got = asr.transcribe(inputs, batch_size=3, warps=warps, warp_groups=groups)
    assert [t.warp for t in got] == [expect[g] for g in groups]
    assert [t.text for t in got] == [asr.transcribe(p, warps=[t.warp])[0].text for p, t in zip(inputs, got)]
    # groups of one are the per-utterance choice; the batch size does not change the choice
    alone = asr.transcribe(inputs, batch_size=2, warps=warps, warp_groups=list(range(len(inputs))))
    per_utt = asr.transcribe(inputs, batch_size=5, warps=warps)
    assert [t.warp for t in alone] == [t.warp for t in per_utt] and [t.text for t in alone] == [t.text for t in per_utt]
    assert [t.warp for t in got] != [t.warp for t in per_utt], "the groups chose as the utterances: untested"
    assert [t.warp for t in asr.transcribe(inputs, batch_size=7, warps=warps, warp_groups=groups)] == \
        [t.warp for t in got]
    # one encoder pass per factor to choose, then one to decode
    passes = []
    handle = asr.model.encoder.register_forward_hook(lambda *args: passes.append(1))
    try:
        asr.transcribe(inputs, batch_size=len(inputs), warps=warps, warp_groups=groups)
    finally:
        handle.remove()
    assert len(passes) == len(warps) + 1
    with pytest.raises(SpeechseqError, match="warp_groups needs warps"):
        asr.transcribe(inputs, warp_groups=groups)
    with pytest.raises(SpeechseqError, match="6 labels for 7 inputs"):
        asr.transcribe(inputs, warps=warps, warp_groups=groups[:-1])
