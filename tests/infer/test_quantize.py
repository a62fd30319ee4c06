"""Int8 dynamic quantization (``speechseq.infer.quantize``) of every model kind, on random debug models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from speechseq.asr.model import build_asr_model
from speechseq.audio.io import load_audio
from speechseq.config import load_config
from speechseq.errors import SpeechseqError
from speechseq.infer.quantize import quantize_int8
from speechseq.train.asr import AsrExperimentConfig

ROOT = Path(__file__).resolve().parents[2]


def debug_model(kind: str) -> nn.Module:
    cfg = load_config(ROOT / "recipes" / "conf" / "debug" / f"{kind}_debug.yaml", AsrExperimentConfig, [])
    torch.manual_seed(0)
    return build_asr_model(cfg.model, 24).eval()


def fp32_linears(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if type(m) is nn.Linear]


@pytest.mark.parametrize("kind", ["ctc", "aed", "paraformer"])
def test_every_linear_but_the_cif_predictor_is_quantized_and_outputs_follow(kind, fsdd_tiny):
    model = debug_model(kind)
    before = fp32_linears(model)
    q = quantize_int8(model)
    assert fp32_linears(model) == before  # the original is untouched
    assert fp32_linears(q) == [n for n in before if n.startswith("predictor")]
    assert (kind == "paraformer") == bool(fp32_linears(q))
    audio = [line.split('"audio": "')[1].split('"')[0] for line in fsdd_tiny["dev"].read_text().splitlines()][:3]
    waves = [torch.from_numpy(load_audio(a, 16000)[0]) for a in audio]
    lens = torch.tensor([len(w) for w in waves])
    batch = nn.utils.rnn.pad_sequence(waves, batch_first=True)
    encoder = model if kind == "ctc" else model.ctc
    encoder_q = q if kind == "ctc" else q.ctc
    with torch.no_grad():
        a, b = encoder(batch, lens), encoder_q(batch, lens)
        assert torch.equal(a.lens, b.lens)
        err = (a.hidden - b.hidden).norm() / a.hidden.norm()
        assert 0 < err < 0.05  # changed (int8), but only by rounding
        hyps = q.recognize(batch, lens)
    assert len(hyps) == 3


def test_a_model_off_the_cpu_is_refused():
    model = debug_model("ctc").to("meta")
    with pytest.raises(SpeechseqError, match="CPU only"):
        quantize_int8(model)
