import math
from dataclasses import dataclass, field

import pytest

from speechseq.config import dump_config, from_dict, load_config
from speechseq.errors import ConfigError
from speechseq.train.asr import AsrExperimentConfig


@dataclass
class Inner:
    num_layers: int = 2
    rate: float = 0.1
    layers: tuple[int, ...] = ()


@dataclass
class Outer:
    name: str = "x"
    inner: Inner = field(default_factory=Inner)


def test_unknown_key_names_key_and_suggests(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("inner:\n  num_layer: 3\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: unknown key 'inner\.num_layer' \(did you mean 'num_layers'\?\)"):
        load_config(p, Outer)


def test_wrong_type_names_key():
    with pytest.raises(ConfigError, match=r"inner\.num_layers: expected int, got str"):
        from_dict(Outer, {"inner": {"num_layers": "six"}})


def test_overrides_and_coercion(tmp_path):
    cfg = load_config(None, Outer, ["inner.num_layers=6", "inner.rate=1", "inner.layers=[3, 6]"])
    assert cfg.inner.num_layers == 6 and cfg.inner.rate == 1.0 and isinstance(cfg.inner.rate, float)
    assert cfg.inner.layers == (3, 6)
    with pytest.raises(ConfigError, match="not of the form"):
        load_config(None, Outer, ["inner.num_layers"])


def test_dump_round_trip(tmp_path):
    cfg = load_config(None, AsrExperimentConfig, ["model.encoder.d_model=64", "train.max_steps=7"])
    path = tmp_path / "resolved.yaml"
    dump_config(cfg, path)
    again = load_config(path, AsrExperimentConfig)
    assert again == cfg


def test_every_recipe_config_loads_and_builds():
    from pathlib import Path

    from speechseq.asr.model import build_asr_model

    confs = sorted((Path(__file__).resolve().parents[1] / "recipes" / "conf").rglob("*.yaml"))
    assert confs, "no recipe configs found"
    for path in confs:
        cfg = load_config(path, AsrExperimentConfig)
        if "librispeech" in path.name:  # published sizes: check parameter count without the optimizer
            model = build_asr_model(cfg.model, cfg.tokenizer.vocab_size)
            # the size names the encoder + CTC head: Paraformer/AED add their decoder on top (model.ctc)
            n = sum(p.numel() for p in getattr(model, "ctc", model).parameters()) / 1e6
            want = 30 if "30m" in path.name else 100
            assert 0.8 * want < n < 1.25 * want, f"{path.name}: {n:.1f}M parameters"
        else:
            build_asr_model(cfg.model, cfg.tokenizer.vocab_size)


def test_yaml_boolean_words_map_back_to_literal_choices(tmp_path):
    # YAML 1.1 parses `off` as False: train.amp=off must still select the "off" choice, not fail or turn into False
    cfg = load_config(None, AsrExperimentConfig, ["train.amp=off"])
    assert cfg.train.amp == "off"
    with pytest.raises(ConfigError, match="train.amp"):
        load_config(None, AsrExperimentConfig, ["train.amp=yes"])


def test_float_fields_accept_what_yaml_reads_as_strings(tmp_path):
    # YAML 1.1 (PyYAML) reads 1e-3, 1e3, inf and nan as strings: a float field must still take them
    p = tmp_path / "c.yaml"
    p.write_text("inner:\n  rate: 1e-3\n")
    assert load_config(p, Outer).inner.rate == 0.001
    assert load_config(None, Outer, ["inner.rate=1e3"]).inner.rate == 1000.0
    assert load_config(None, Outer, ["inner.rate=inf"]).inner.rate == float("inf")
    assert math.isnan(load_config(None, Outer, ["inner.rate=nan"]).inner.rate)
    with pytest.raises(ConfigError, match=r"inner\.rate: expected float, got str 'fast'"):
        load_config(None, Outer, ["inner.rate=fast"])


def test_duplicate_yaml_key_names_file_line_and_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("inner:\n  rate: 0.1\n  num_layers: 2\n  rate: 0.5\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:4: duplicate key 'rate'"):
        load_config(p, Outer)
    p.write_text("inner:\n  <<: {rate: 0.1, num_layers: 3}\n  rate: 0.5\n")  # overriding a merged key is fine
    assert load_config(p, Outer).inner == Inner(num_layers=3, rate=0.5)
