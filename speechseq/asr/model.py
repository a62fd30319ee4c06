"""ASR model config and builder: one shared front end + conformer encoder, one head picked by ``kind``.

    model = build_asr_model(AsrModelConfig(kind="ctc"), vocab_size=tokenizer.vocab_size)

Every model returned here takes ``(waves, wave_lens, tokens, token_lens)`` in ``forward`` and returns an output with
``loss`` and ``metrics``, and has ``recognize(waves, wave_lens, method, beam_size, spans=False)`` returning
hypotheses with ``tokens``, ``frames`` (encoder frame per token), ``score`` and, with ``spans=True``, the frames of
every token from the same encoder pass (timestamps); ``token_spans(waves, wave_lens, hyps)`` aligns given
hypotheses; plus ``frontend`` and ``frame_shift_s``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from torch import nn

from speechseq.asr.aed import AedConfig, AedModel
from speechseq.asr.conformer import ConformerConfig
from speechseq.asr.ctc import CtcConfig, CtcModel
from speechseq.asr.frontend import FrontendConfig
from speechseq.asr.paraformer import ParaformerConfig, ParaformerModel
from speechseq.errors import ConfigError


@dataclass
class AsrModelConfig:
    """kind: which head; frontend/encoder: shared; ctc: CTC head options (also the auxiliary CTC of the other heads);
    paraformer / aed: options of those heads (ignored by the other kinds)."""

    kind: Literal["ctc", "paraformer", "aed"] = "ctc"
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    encoder: ConformerConfig = field(default_factory=ConformerConfig)
    ctc: CtcConfig = field(default_factory=CtcConfig)
    paraformer: ParaformerConfig = field(default_factory=ParaformerConfig)
    aed: AedConfig = field(default_factory=AedConfig)


def build_asr_model(cfg: AsrModelConfig, vocab_size: int) -> nn.Module:
    if cfg.encoder.num_features != cfg.frontend.fbank.n_mels:
        raise ConfigError(f"encoder.num_features ({cfg.encoder.num_features}) must equal frontend.fbank.n_mels "
                          f"({cfg.frontend.fbank.n_mels})")
    builders = {
        "ctc": lambda: CtcModel(cfg.frontend, cfg.encoder, cfg.ctc, vocab_size),
        "paraformer": lambda: ParaformerModel(cfg.frontend, cfg.encoder, cfg.ctc, cfg.paraformer, vocab_size),
        "aed": lambda: AedModel(cfg.frontend, cfg.encoder, cfg.ctc, cfg.aed, vocab_size),
    }
    if cfg.kind not in builders:
        raise ConfigError(f"unknown model kind {cfg.kind!r} (choices: {', '.join(builders)})")
    return builders[cfg.kind]()
