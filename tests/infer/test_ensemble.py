"""Ensembles by n-best rescoring (``speechseq.infer.ensemble``): the CTC sequence log-likelihood against brute
force, the choice against an independent argmax, batched == one by one, and the CLI.

Two debug CTC models are trained on the same 40 FSDD digits (a few seconds each): one as the recognizer tests do,
one with another seed and an 8 kHz front end, so that the members differ in weights and in sample rate.
"""

from __future__ import annotations

import itertools
import json
import math
import shutil
import types
from pathlib import Path

import pytest
import torch

import speechseq
from speechseq.asr.ctc import BLANK
from speechseq.bin import decode as decode_cli
from speechseq.config import load_config
from speechseq.errors import SpeechseqError
from speechseq.infer import ensemble
from speechseq.infer.ensemble import ctc_log_likelihoods, ensemble_transcribe
from speechseq.text.ngram import LmFusion, TokenLmScorer, estimate_from_texts
from speechseq.text.tokenizer import BOS_ID, EOS_ID
from speechseq.train.asr import AsrExperimentConfig, train_asr

ROOT = Path(__file__).resolve().parents[2]
DEBUG = ROOT / "recipes" / "conf" / "debug" / "ctc_debug.yaml"
TRAIN = ["train.max_steps=200", "train.lr=0.005", "train.checkpoint_every=100", "train.log_every=100"]


@pytest.fixture(scope="module")
def members(tmp_path_factory, fsdd_tiny) -> dict:
    root = tmp_path_factory.mktemp("ensemble")
    manifest = root / "train.jsonl"
    shutil.copyfile(fsdd_tiny["train"], manifest)
    dirs = []
    for name, extra in (("a", []), ("b", ["train.seed=7", "model.frontend.fbank.sample_rate=8000"])):
        cfg = load_config(DEBUG, AsrExperimentConfig, TRAIN + extra)
        train_asr(cfg, root / name, manifest, None, device="cpu")
        dirs.append(root / name)
    audio = [json.loads(line)["audio"] for line in manifest.read_text().splitlines()]
    texts = [json.loads(line)["text"] for line in manifest.read_text().splitlines()]
    return {"dirs": dirs, "recs": [speechseq.load_asr(d) for d in dirs], "audio": [audio[i] for i in (0, 13, 5, 22,
            31, 9, 38, 17)], "texts": texts, "root": root}


def test_ctc_log_likelihood_is_the_sum_over_all_alignments():
    torch.manual_seed(0)
    t, v = 5, 4
    log_probs = torch.randn(t, v, dtype=torch.float64).log_softmax(-1)
    seqs = [[], [1], [1, 1], [2, 3], [1, 2, 3, 1], [1, 1, 1], [1, 1, 1, 1]]
    got = ctc_log_likelihoods(log_probs, seqs)
    for seq, value in zip(seqs, got.tolist()):
        total = -math.inf
        for path in itertools.product(range(v), repeat=t):
            collapsed = [k for j, k in enumerate(path) if k != BLANK and (j == 0 or path[j - 1] != k)]
            if collapsed == seq:
                total = float(torch.logaddexp(torch.tensor(total, dtype=torch.float64), sum(log_probs[j, k] for j, k in enumerate(path))))
        if total == -math.inf:  # [1, 1, 1, 1] needs 7 frames
            assert value == -math.inf
        else:
            assert value == pytest.approx(total, abs=1e-9)
    assert got[-1] == -math.inf and got[-2] > -math.inf


def _mean_ll(recs, path: str, text: str) -> float:
    total = 0.0
    for rec in recs:
        wave = torch.from_numpy(rec._load(path, path))[None]
        with torch.no_grad():
            out = (rec.model if rec.kind == "ctc" else rec.model.ctc)(wave, torch.tensor([wave.shape[1]]))
        total += float(ctc_log_likelihoods(out.log_probs[0, : int(out.lens[0])], [rec.tokenizer.encode(text)])[0])
    return total / len(recs)


def test_the_ensemble_picks_the_proposal_with_the_best_mean_likelihood(members, monkeypatch):
    recs, inputs = members["recs"], members["audio"]
    assert recs[0].sample_rate != recs[1].sample_rate
    own = [[r.text for r in rec.transcribe(inputs)] for rec in recs]
    assert own[0] != own[1], "the members agree everywhere: the choice between them is not tested"
    got = ensemble_transcribe(recs, inputs, batch_size=3, method="greedy")
    for k, (path, result) in enumerate(zip(inputs, got)):
        candidates = {own[0][k], own[1][k]}
        assert result.text in candidates
        scores = {c: _mean_ll(recs, path, c) for c in candidates}  # each utterance alone
        assert scores[result.text] == pytest.approx(max(scores.values()), abs=1e-6)
        assert result.score == pytest.approx(scores[result.text], rel=1e-4, abs=1e-3)
        assert result.tokens == recs[0].tokenizer.encode(result.text)
    # one member twice is that member once; batched == one by one
    once = [r.text for r in ensemble_transcribe(recs[:1], inputs, method="greedy")]
    assert once == own[0]
    assert [r.text for r in ensemble_transcribe([recs[0], recs[0]], inputs, method="greedy")] == once
    alone = [ensemble_transcribe(recs, [x], batch_size=1, method="greedy")[0].text for x in inputs]
    assert alone == [r.text for r in got]
    monkeypatch.setattr(ensemble, "CHUNK", 3)  # posteriors held for 3 utterances at a time: the same choices
    assert [r.text for r in ensemble_transcribe(recs, inputs, batch_size=2, method="greedy")] == alone
    pair = tuple(Path(x) for x in inputs[:2])  # a tuple of two paths is two inputs, not an (array, rate) pair
    assert [r.text for r in ensemble_transcribe(recs, pair, method="greedy")] == alone[:2]


def test_beam_ensemble_with_lm_scores_and_never_loses_a_members_best(members):
    recs, inputs = members["recs"], members["audio"]
    lm = LmFusion(TokenLmScorer(estimate_from_texts(members["texts"], recs[0].tokenizer, 3), recs[0].tokenizer),
                  0.5, 1.0)
    got = ensemble_transcribe(recs, inputs, batch_size=4, method="beam", beam_size=4, lm=lm)
    own_best = [r.text for r in recs[0].transcribe(inputs, method="beam", beam_size=4, lm=lm)]
    for path, result, best in zip(inputs, got, own_best):
        tokens = recs[0].tokenizer.encode(result.text)
        lm_lp = sum(lm.scorer.score(tokens[:k], t) for k, t in enumerate(tokens)) + lm.scorer.score(tokens, EOS_ID)
        expect = _mean_ll(recs, path, result.text) + lm.weight * lm_lp + lm.length_bonus * len(tokens)
        assert result.score == pytest.approx(expect, rel=1e-4, abs=1e-3)
        # member a's own beam + LM best is among the proposals, so the ensemble's choice scores at least as well
        btoks = recs[0].tokenizer.encode(best)
        blp = sum(lm.scorer.score(btoks[:k], t) for k, t in enumerate(btoks)) + lm.scorer.score(btoks, EOS_ID)
        assert result.score >= _mean_ll(recs, path, best) + lm.weight * blp + lm.length_bonus * len(btoks) - 1e-3


def test_a_paraformer_member_proposes_and_is_scored_by_its_ctc_branch(members, tmp_path):
    cfg = load_config(ROOT / "recipes" / "conf" / "debug" / "paraformer_debug.yaml", AsrExperimentConfig, TRAIN)
    train_asr(cfg, tmp_path / "para", members["root"] / "train.jsonl", None, device="cpu")
    para = speechseq.load_asr(tmp_path / "para")
    recs, inputs = [members["recs"][0], para], members["audio"]
    own = [[r.text for r in rec.transcribe(inputs, method="beam", beam_size=3)] for rec in recs]
    calls = []
    hook = para.model.ctc.encoder.register_forward_hook(lambda *_: calls.append(1))
    got = ensemble_transcribe(recs, inputs, batch_size=4, method="beam", beam_size=3)
    hook.remove()
    assert len(calls) == 2  # one encoder pass per batch of 4 serves its posteriors and its proposals
    for k, (path, result) in enumerate(zip(inputs, got)):
        assert result.score == pytest.approx(_mean_ll(recs, path, result.text), rel=1e-4, abs=1e-3)
        # the Paraformer's own transcript is a proposal: the choice scores at least as well
        assert result.score >= _mean_ll(recs, path, own[1][k]) - 1e-3
    cfg = load_config(ROOT / "recipes" / "conf" / "debug" / "paraformer_debug.yaml", AsrExperimentConfig,
                      ["train.max_steps=1", "model.paraformer.ctc_weight=0"])
    train_asr(cfg, tmp_path / "para0", members["root"] / "train.jsonl", None, device="cpu")
    with pytest.raises(SpeechseqError, match="ctc_weight 0"):
        ensemble_transcribe([recs[0], speechseq.load_asr(tmp_path / "para0")], inputs)


def _aed_score(rec, path: str, text: str) -> float:
    """An AED member's score of ``text``, computed independently: its CTC forward score mixed with its decoder's
    log-prob of the tokens and <eos>, summed step by step through the KV-cached decoder."""
    wave = torch.from_numpy(rec._load(path, path))[None]
    tokens = rec.tokenizer.encode(text)
    with torch.no_grad():
        enc = rec.model.ctc(wave, torch.tensor([wave.shape[1]]))
        state = rec.model.init_state(enc.hidden, enc.lens)
        att, last = 0.0, torch.tensor([BOS_ID])
        for tok in tokens + [EOS_ID]:
            logp, state = rec.model.step(last, state)
            att += float(logp[0, tok])
            last = torch.tensor([tok])
    ctc = float(ctc_log_likelihoods(enc.log_probs[0, : int(enc.lens[0])], [tokens])[0])
    w = rec.model.cfg.ctc_weight
    return w * ctc + (1 - w) * att


def test_an_aed_member_is_scored_by_its_decoder_and_its_ctc_branch(members, tmp_path):
    cfg = load_config(ROOT / "recipes" / "conf" / "debug" / "aed_debug.yaml", AsrExperimentConfig, TRAIN)
    train_asr(cfg, tmp_path / "aed", members["root"] / "train.jsonl", None, device="cpu")
    aed = speechseq.load_asr(tmp_path / "aed")
    recs, inputs = [members["recs"][0], aed], members["audio"]
    own = [r.text for r in aed.transcribe(inputs, method="beam", beam_size=3)]
    got = ensemble_transcribe(recs, inputs, batch_size=4, method="beam", beam_size=3)
    for k, (path, result) in enumerate(zip(inputs, got)):
        mean = (_mean_ll(recs[:1], path, result.text) + _aed_score(aed, path, result.text)) / 2
        assert result.score == pytest.approx(mean, rel=1e-4, abs=1e-3)
        # the AED's own beam transcript is a proposal: the choice scores at least as well
        assert result.score >= (_mean_ll(recs[:1], path, own[k]) + _aed_score(aed, path, own[k])) / 2 - 1e-3
    # teacher-forced scores of several sequences at once == the cached step-by-step sum, one by one
    wave = torch.from_numpy(aed._load(inputs[0], inputs[0]))[None]
    with torch.no_grad():
        enc = aed.model.ctc(wave, torch.tensor([wave.shape[1]]))
    texts = ["one", "two three", ""]
    batch = aed.model.sequence_log_probs(enc.hidden[0], [aed.tokenizer.encode(t) for t in texts])
    w = aed.model.cfg.ctc_weight
    for text, value in zip(texts, batch.tolist()):
        tokens = aed.tokenizer.encode(text)
        ctc = float(ctc_log_likelihoods(enc.log_probs[0], [tokens])[0])
        assert w * ctc + (1 - w) * value == pytest.approx(_aed_score(aed, inputs[0], text), abs=1e-4)
    # under bf16 autocast (decode --bf16) the same ensemble runs, AED decoder scores included, and stays close
    half = [speechseq.load_asr(members["dirs"][0], bf16=True), speechseq.load_asr(tmp_path / "aed", bf16=True)]
    got_bf16 = ensemble_transcribe(half, inputs, batch_size=4, method="beam", beam_size=3)
    assert all(isinstance(r.score, float) for r in got_bf16)
    assert sum(a.text == b.text for a, b in zip(got, got_bf16)) >= len(got) - 1
    assert [r.score for r in got_bf16] == pytest.approx([r.score for r in got], rel=0.1, abs=0.5)


def test_bad_ensembles_are_refused(members):
    recs, inputs = members["recs"], members["audio"]
    with pytest.raises(SpeechseqError, match="no members"):
        ensemble_transcribe([], inputs)
    with pytest.raises(SpeechseqError, match="method"):
        ensemble_transcribe(recs, inputs, method="sample")
    alien = LmFusion(types.SimpleNamespace(pieces=["x"] * 40), 0.5, 1.0)
    with pytest.raises(SpeechseqError, match="tokenizer"):
        ensemble_transcribe(recs, inputs, method="beam", lm=alien)
    lm = LmFusion(TokenLmScorer(estimate_from_texts(members["texts"], recs[0].tokenizer, 2), recs[0].tokenizer))
    with pytest.raises(SpeechseqError, match="beam"):
        ensemble_transcribe(recs, inputs, method="greedy", lm=lm)
    with pytest.raises(SpeechseqError, match="list"):
        ensemble_transcribe(recs, inputs[0])


def test_decode_cli_ensemble(members, tmp_path, fsdd_tiny):
    a, b = members["dirs"]
    out = tmp_path / "dec"
    assert decode_cli.main(["--model-dir", str(a), "--ensemble", str(b), "--manifest", str(fsdd_tiny["dev"]),
                            "--out", str(out), "--method", "greedy"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ensemble"] == [str(b)] and 0.0 <= summary["wer"]
    rows = [json.loads(line) for line in (out / "hyp.jsonl").read_text().splitlines()]
    recs = members["recs"]
    manifest = [json.loads(line) for line in Path(fsdd_tiny["dev"]).read_text().splitlines()]
    expect = ensemble_transcribe(recs, [m["audio"] for m in manifest], method="greedy")  # each at its own rate
    assert [r["hyp"] for r in rows] == [e.text for e in expect]
    # with test-time warps: every member picks its own factor (the same as the library call)
    assert decode_cli.main(["--model-dir", str(a), "--ensemble", str(b), "--manifest", str(fsdd_tiny["dev"]),
                            "--out", str(tmp_path / "warped"), "--method", "greedy", "--warps", "0.9,1,1.1"]) == 0
    warped = [json.loads(line)["hyp"] for line in (tmp_path / "warped" / "hyp.jsonl").read_text().splitlines()]
    expect = ensemble_transcribe(recs, [m["audio"] for m in manifest], method="greedy", warps=[0.9, 1.0, 1.1])
    assert warped == [e.text for e in expect]
    assert json.loads((tmp_path / "warped" / "summary.json").read_text())["warps"] == [0.9, 1.0, 1.1]


def test_ensemble_with_warps_lets_every_member_pick_its_own_factor(members, monkeypatch):
    from speechseq.infer.recognizer import Recognizer

    recs, inputs = members["recs"], members["audio"]
    warps = [0.85, 1.0, 1.15]
    own = [r.text for r in recs[0].transcribe(inputs, method="greedy", warps=warps)]
    assert [r.text for r in ensemble_transcribe(recs[:1], inputs, method="greedy", warps=warps)] == own
    plain = [r.text for r in ensemble_transcribe(recs, inputs, method="greedy")]
    assert [r.text for r in ensemble_transcribe(recs, inputs, method="greedy", warps=[1.0])] == plain
    chosen = []  # (member, its factors) for every batch
    pick = Recognizer.warped_encode

    def recording(self, padded, lens, w):
        factors, out = pick(self, padded, lens, w)
        chosen.append((self, factors))
        return factors, out

    monkeypatch.setattr(Recognizer, "warped_encode", recording)
    got = [r.text for r in ensemble_transcribe(recs, inputs, batch_size=8, method="greedy", warps=warps)]
    assert [m for m, _ in chosen] == recs  # one batch each: each member chose for itself
    assert all(set(f.tolist()) <= set(warps) for _, f in chosen)
    alone = [ensemble_transcribe(recs, [x], batch_size=1, method="greedy", warps=warps)[0].text for x in inputs]
    assert alone == got  # batched == one by one


def test_a_proposal_is_scored_by_its_own_segmentation_too():
    """A CTC model may emit "ab" as pieces a + b where the tokenizer's encode gives the single piece ab: the
    proposal's own ids count (the better of the two), not only the re-encoding."""
    from speechseq.infer.ensemble import _choose

    pieces = ["<blank>", "<unk>", "<s>", "</s>", "a", "b", "ab"]

    class Tok:
        def decode(self, ids):
            return "".join(pieces[i] for i in ids)

        def encode(self, text):
            return [6] if text == "ab" else [pieces.index(c) for c in text]

    member = types.SimpleNamespace(tokenizer=Tok(), _pieces=pieces)
    lp = torch.full((4, 7), -9.0)
    lp[0, 4] = lp[1, 0] = lp[2, 5] = lp[3, 0] = 0.0  # frames say a, blank, b, blank
    lp = lp.log_softmax(-1)
    got = _choose([[[4, 5]]], [lp], [None], [member], [0], None, None)
    split, whole = ctc_log_likelihoods(lp, [[4, 5], [6]]).tolist()
    assert got.text == "ab" and split > whole + 5
    assert got.score == pytest.approx(split)
