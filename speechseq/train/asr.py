"""The ASR training task: tokenizer, model, data, loss and validation wired for :func:`speechseq.train.loop.fit`.

    cfg = load_config("recipes/conf/asr/ctc_tiny.yaml", AsrExperimentConfig, overrides)
    train_asr(cfg, "exp/ctc", "data/train.jsonl", "data/dev.jsonl")

The experiment folder becomes a self-describing model directory: ``config.yaml`` (resolved), ``tokenizer.model``,
``model.pt`` (averaged weights + config + tokenizer hash), ``checkpoints/`` and ``tensorboard/``.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from speechseq.asr.ctc import CtcModel
from speechseq.asr.model import AsrModelConfig, build_asr_model
from speechseq.config import dump_config, to_dict
from speechseq.data.dataset import AsrDataset, Batch, collate_asr
from speechseq.data.manifest import Utterance, read_manifest
from speechseq.data.sampler import DurationBucketSampler, utterance_durations
from speechseq.errors import SpeechseqError
from speechseq.text.tokenizer import Tokenizer, TokenizerConfig, train_tokenizer
from speechseq.train import checkpoint as ckpt
from speechseq.train.loop import FitResult, TrainConfig, dist_info, fit, init_distributed, resolve_device

log = logging.getLogger("speechseq.train")


@dataclass
class AsrExperimentConfig:
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: AsrModelConfig = field(default_factory=AsrModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def asr_loss(model: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, float]]:
    out = model(batch.waves, batch.wave_lens, batch.tokens, batch.token_lens)
    return out.loss, out.metrics


def prepare_tokenizer(cfg: TokenizerConfig, exp_dir: Path, train_utts: list[Utterance],
                      tokenizer_path: str | Path | None = None, resuming: bool = False) -> Tokenizer:
    """Use ``tokenizer_path``, else an existing ``exp_dir/tokenizer.model``, else train one on the transcripts.
    ``resuming``: the experiment holds checkpoints, so its tokenizer must not be replaced by another one."""
    target = exp_dir / "tokenizer.model"
    if tokenizer_path is not None:
        tok = Tokenizer(tokenizer_path)
        if resuming and target.exists() and Tokenizer(target).sha256() != tok.sha256():
            raise SpeechseqError(f"{tokenizer_path}: differs from {target}, the tokenizer of the checkpoints this run "
                                 "would resume; use that one, or train into a new experiment folder")
        tok.save(exp_dir)
        return Tokenizer(target)
    if target.exists():
        return Tokenizer(target)
    return train_tokenizer((u.text for u in train_utts), exp_dir, cfg)


@torch.no_grad()
def compute_frontend_stats(model: nn.Module, dataset: AsrDataset, max_utterances: int, seed: int) -> None:
    """Global feature mean/std from up to ``max_utterances`` random training utterances."""
    idx = list(range(len(dataset)))
    random.Random(seed).shuffle(idx)
    examples = [ex for ex in (dataset[i] for i in idx[:max_utterances]) if ex is not None]
    if not examples:
        raise SpeechseqError("no readable training audio to compute feature statistics from")
    batch = collate_asr(examples)
    feats, lens = model.frontend.raw_features(batch.waves, batch.wave_lens)
    model.frontend.set_stats(feats, lens)


def load_init_weights(model: nn.Module, model_dir: Path) -> None:
    """Copy a model directory's averaged weights into ``model`` (same architecture, strict). A CTC model may also
    initialise the encoder, front end and CTC head of a Paraformer or AED model (their ``.ctc`` part, same
    encoder config); the decoder then starts from scratch."""
    weights = model_dir / "model.pt"
    if not weights.exists():
        raise SpeechseqError(f"{model_dir}: not a model directory (no model.pt)")
    state = ckpt.load(weights, map_location="cpu")["model"]
    is_ctc_state = not any(k.startswith("ctc.") for k in state)
    target, what = model, "model"
    if is_ctc_state and isinstance(getattr(model, "ctc", None), CtcModel):
        target, what = model.ctc, "encoder and CTC head (the decoder starts from scratch)"
    try:
        target.load_state_dict(state)
    except RuntimeError as e:
        raise SpeechseqError(f"{weights}: weights do not fit the configured model ({str(e).splitlines()[0]})") from e
    log.info("initialised the %s from %s", what, weights)


def make_validate(utts: list[Utterance], tokenizer: Tokenizer, sample_rate: int, device: torch.device,
                  max_utterances: int = 200, batch_size: int = 16):
    """Greedy WER/CER on (a prefix of) the dev set, returned as a closure for ``fit``."""
    from speechseq.text.score import error_rates

    utts = utts[:max_utterances]
    dataset = AsrDataset(utts, sample_rate)

    def validate(model: nn.Module) -> dict[str, float]:
        refs, hyps = [], []
        examples = [dataset[i] for i in range(len(dataset))]
        examples = [e for e in examples if e is not None]
        for start in range(0, len(examples), batch_size):
            batch = collate_asr(examples[start:start + batch_size]).to(device)
            for hyp, text in zip(model.recognize(batch.waves, batch.wave_lens, "greedy"), batch.texts):
                hyps.append(tokenizer.decode(hyp.tokens))
                refs.append(text)
        rates = error_rates(refs, hyps)
        return {"wer": rates.wer, "cer": rates.cer}

    return validate


def train_asr(cfg: AsrExperimentConfig, exp_dir: str | Path, train_manifest: str | Path,
              dev_manifest: str | Path | None = None, tokenizer_path: str | Path | None = None,
              device: str = "auto", stats_utterances: int = 300, init_from: str | Path | None = None) -> FitResult:
    """Train an ASR model into ``exp_dir`` (resuming if it holds checkpoints); returns the fit result.

    ``init_from``: a trained model directory whose weights (``model.pt``, feature statistics included) and tokenizer
    start the run (fine-tuning, e.g. the MWER stage). Its architecture must match ``cfg.model`` (loss options such
    as ``paraformer.mwer_weight`` may differ).
    """
    if init_from is not None:
        if tokenizer_path is not None:
            raise SpeechseqError("give either --tokenizer or --init (which brings its own tokenizer), not both")
        tokenizer_path = Path(init_from) / "tokenizer.model"
        if not tokenizer_path.exists():
            raise SpeechseqError(f"{init_from}: not a model directory (no tokenizer.model)")
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    init_distributed(dev)
    rank, world, _ = dist_info()
    torch.manual_seed(cfg.train.seed)
    random.seed(cfg.train.seed)
    train_utts = read_manifest(train_manifest)
    resuming = bool(ckpt.list_checkpoints(exp_dir / "checkpoints"))
    if rank == 0:
        tokenizer = prepare_tokenizer(cfg.tokenizer, exp_dir, train_utts, tokenizer_path, resuming)
        dump_config(cfg, exp_dir / "config.yaml")
    if world > 1:
        torch.distributed.barrier()
    tokenizer = Tokenizer(exp_dir / "tokenizer.model")
    model = build_asr_model(cfg.model, tokenizer.vocab_size)
    sample_rate = model.frontend.sample_rate
    dataset = AsrDataset(train_utts, sample_rate, tokenizer.encode, cfg.train.augment, cfg.train.seed)
    if resuming:
        pass  # fit() restores everything (a checkpoints/ folder without step files is a fresh start)
    elif init_from is not None:
        load_init_weights(model, Path(init_from))
    else:
        compute_frontend_stats(model, AsrDataset(train_utts, sample_rate), stats_utterances, cfg.train.seed)
    sampler = DurationBucketSampler(utterance_durations(train_utts), cfg.train.max_duration_s, cfg.train.num_buckets,
                                    shuffle=True, seed=cfg.train.seed, rank=rank, world_size=world)
    dev_utts = read_manifest(dev_manifest) if dev_manifest is not None else []
    validate = make_validate(dev_utts, tokenizer, sample_rate, dev) if dev_utts else None
    meta = {"config": to_dict(cfg), "tokenizer_sha256": tokenizer.sha256()}
    nparams = sum(p.numel() for p in model.parameters())
    if rank == 0:
        log.info("model %s: %.2fM parameters, vocab %d, %d training utterances, world size %d", cfg.model.kind,
                 nparams / 1e6, tokenizer.vocab_size, len(train_utts), world)
    try:
        return fit(model, asr_loss, dataset, sampler, cfg.train, exp_dir, meta, sample_rate, validate, dev,
                   pad_id=tokenizer.blank_id)
    finally:
        if world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
