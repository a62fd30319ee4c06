"""Paraformer and AED model directories through the same training entry point and ``speechseq.load_asr`` API as CTC:
every decoding method, word timestamps, batch == one by one, and MWER fine-tuning initialised from a trained model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import speechseq
from speechseq.config import load_config
from speechseq.errors import SpeechseqError
from speechseq.text.ngram import LmFusion, TokenLmScorer, estimate_from_texts
from speechseq.train import checkpoint as ckpt
from speechseq.train.asr import AsrExperimentConfig, train_asr

ROOT = Path(__file__).resolve().parents[2]
OVERRIDES = ["train.max_steps=40", "train.lr=0.005", "train.checkpoint_every=20", "train.log_every=20"]


def debug_config(kind: str, extra: list[str] = ()) -> AsrExperimentConfig:
    return load_config(ROOT / "recipes" / "conf" / "debug" / f"{kind}_debug.yaml", AsrExperimentConfig,
                       OVERRIDES + list(extra))


@pytest.fixture(scope="module", params=["paraformer", "aed"])
def trained(request, tmp_path_factory, fsdd_tiny) -> tuple[str, Path]:
    exp = tmp_path_factory.mktemp(request.param) / "exp"
    result = train_asr(debug_config(request.param), exp, fsdd_tiny["train"], fsdd_tiny["dev"], device="cpu")
    assert result.steps == 40 and "wer" in result.metrics
    return request.param, exp


def test_load_asr_decodes_with_every_method_and_times_words(trained, fsdd_tiny):
    kind, exp = trained
    asr = speechseq.load_asr(exp)
    assert asr.kind == kind
    assert asr.methods == ("greedy", "beam")
    audio = [line.split('"audio": "')[1].split('"')[0] for line in fsdd_tiny["dev"].read_text().splitlines()][:5]
    texts = [line.split('"text": "')[1].split('"')[0] for line in fsdd_tiny["train"].read_text().splitlines()]
    lm = LmFusion(TokenLmScorer(estimate_from_texts(texts, asr.tokenizer, 3), asr.tokenizer), 0.5, 1.0)
    for method, fusion in [(m, None) for m in asr.methods] + [("beam", lm)]:
        together = asr.transcribe(audio, batch_size=5, method=method, beam_size=3, word_timestamps=True, lm=fusion)
        alone = [asr.transcribe(a, method=method, beam_size=3, lm=fusion)[0] for a in audio]
        assert [t.text for t in together] == [t.text for t in alone]
        assert [t.score for t in together] == pytest.approx([t.score for t in alone], abs=1e-3)
        for t in together:
            assert isinstance(t.text, str) and t.words is not None and t.token_times is not None
            assert all(0 <= w.start_s < w.end_s for w in t.words)
            if kind == "paraformer" or t.token_times:  # AED: empty when the hypothesis cannot be aligned
                assert len(t.token_times) == len(t.tokens)
                assert [x.start_s for x in t.token_times] == sorted(x.start_s for x in t.token_times)
    with pytest.raises(SpeechseqError, match="unknown method 'nope'"):
        asr.transcribe(audio[0], method="nope")


def test_too_short_clip_gives_empty_text_for_every_method(trained, fsdd_tiny):
    kind, exp = trained
    asr = speechseq.load_asr(exp)
    audio = fsdd_tiny["dev"].read_text().splitlines()[0].split('"audio": "')[1].split('"')[0]
    for method in asr.methods:
        for num_samples in (1, 300):  # alone, and batched beside a real utterance
            out = asr.transcribe([(np.full(num_samples, 0.1, np.float32), 8000), audio], method=method, beam_size=3)
            assert out[0].text == "" and out[0].tokens == [], (kind, method, num_samples)
            assert out[1].text == asr.transcribe(audio, method=method, beam_size=3)[0].text


def test_recognize_spans_from_one_pass_equal_token_spans(trained, fsdd_tiny):
    from speechseq.audio.io import load_audio

    kind, exp = trained
    model = speechseq.load_asr(exp).model
    audio = [line.split('"audio": "')[1].split('"')[0] for line in fsdd_tiny["dev"].read_text().splitlines()][:4]
    waves = [torch.from_numpy(load_audio(a, 16000)[0]) for a in audio]
    lens = torch.tensor([len(w) for w in waves])
    batch = torch.nn.utils.rnn.pad_sequence(waves, batch_first=True)
    for method in ("greedy", "beam"):
        hyps = model.recognize(batch, lens, method, 3, spans=True)
        assert all(h.spans is not None for h in hyps)
        assert [h.spans for h in hyps] == model.token_spans(batch, lens, hyps)
        assert all(h.spans is None for h in model.recognize(batch, lens, method, 3))


def test_test_time_warps_batched_equal_one_by_one(trained, fsdd_tiny):
    kind, exp = trained
    asr = speechseq.load_asr(exp)
    audio = [line.split('"audio": "')[1].split('"')[0] for line in fsdd_tiny["dev"].read_text().splitlines()][:5]
    assert [t.text for t in asr.transcribe(audio, warps=[1.0])] == [t.text for t in asr.transcribe(audio)]
    warps = [0.9, 0.95, 1.05, 1.1]
    together = asr.transcribe(audio, batch_size=5, warps=warps)  # one batch holding different factors
    alone = [asr.transcribe(a, warps=warps)[0] for a in audio]
    assert [t.warp for t in together] == [t.warp for t in alone] and {t.warp for t in together} <= set(warps)
    assert [t.text for t in together] == [t.text for t in alone]
    assert [t.text for t in alone] == [asr.transcribe(a, warps=[t.warp])[0].text for a, t in zip(audio, alone)]


def test_mwer_fine_tuning_starts_from_the_trained_weights(tmp_path, fsdd_tiny):
    base = tmp_path / "base"
    train_asr(debug_config("paraformer", ["train.max_steps=10"]), base, fsdd_tiny["train"], device="cpu")
    mwer = tmp_path / "mwer"
    cfg = debug_config("paraformer", ["train.max_steps=2", "model.paraformer.mwer_weight=0.5", "train.lr=0.0"])
    result = train_asr(cfg, mwer, fsdd_tiny["train"], device="cpu", init_from=base)
    assert result.steps == 2
    assert (mwer / "tokenizer.model").read_bytes() == (base / "tokenizer.model").read_bytes()
    before, after = ckpt.load(base / "model.pt")["model"], ckpt.load(mwer / "model.pt")["model"]
    for name, value in before.items():  # lr 0: fine-tuning kept the initial weights (stats included)
        torch.testing.assert_close(after[name], value, msg=name)
    # an init directory of another architecture is a clear error
    with pytest.raises(SpeechseqError, match="do not fit the configured model"):
        train_asr(debug_config("aed"), tmp_path / "bad", fsdd_tiny["train"], device="cpu", init_from=base)


@pytest.mark.parametrize("kind", ["paraformer", "aed"])
def test_ctc_model_initialises_the_encoder_of_a_decoder_model(tmp_path, fsdd_tiny, kind):
    base = tmp_path / "ctc"
    train_asr(debug_config("ctc", ["train.max_steps=4"]), base, fsdd_tiny["train"], device="cpu")
    out = tmp_path / kind
    train_asr(debug_config(kind, ["train.max_steps=1", "train.lr=0.0"]), out, fsdd_tiny["train"], device="cpu",
              init_from=base)
    before, after = ckpt.load(base / "model.pt")["model"], ckpt.load(out / "model.pt")["model"]
    for name, value in before.items():  # lr 0: the .ctc part is the CTC model's (front-end statistics included)
        torch.testing.assert_close(after[f"ctc.{name}"], value, msg=name)
    # an encoder of another size is still a clear error
    with pytest.raises(SpeechseqError, match="do not fit the configured model"):
        train_asr(debug_config(kind, ["train.max_steps=1", "model.encoder.d_model=24"]), tmp_path / "bad",
                  fsdd_tiny["train"], device="cpu", init_from=base)
