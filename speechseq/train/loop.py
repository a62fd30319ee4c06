"""One plain training loop for every task: AdamW, warmup + decay, clipping, accumulation, AMP, DDP, exact resume.

    result = fit(model, loss_fn, dataset, sampler, cfg, exp_dir, meta={"config": ..., "tokenizer_sha256": ...})

``loss_fn(model, batch) -> (loss, metrics)`` is the only task-specific piece. Multi-process data parallel training
is launched with ``torchrun --nproc_per_node N``: the loop reads RANK/WORLD_SIZE/LOCAL_RANK, joins the process group
(gloo on CPU, nccl on CUDA), wraps the model in DistributedDataParallel and shards batches through the sampler.

Exact resume: a checkpoint is written only on an optimizer-step boundary; it stores the number of batches of the
current epoch already consumed (not merely prefetched by loader workers) and the RNG states, which are restored
after the new loader iterator is created, so the next loss equals that of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn
from tqdm import tqdm

from speechseq.data.dataset import AsrDataset, Batch, WaveAugmentConfig, make_loader
from speechseq.data.sampler import DurationBucketSampler
from speechseq.errors import SpeechseqError
from speechseq.train import checkpoint as ckpt

log = logging.getLogger("speechseq.train")

LossFn = Callable[[nn.Module, Batch], tuple[Tensor, dict[str, float]]]


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping.

    Attributes:
        max_steps: optimizer steps to train for (the run stops at whichever of max_steps/max_epochs comes first).
        max_epochs: passes over the training set.
        max_duration_s: padded seconds of audio per batch (per process).
        num_buckets: duration buckets of the sampler.
        lr: peak learning rate.
        warmup_steps: linear warmup from 0 to ``lr``.
        schedule: "cosine" (to ``final_lr_ratio * lr`` at max_steps), "noam" (inverse sqrt) or "constant".
        final_lr_ratio: end of the cosine decay, as a fraction of ``lr``.
        cycles: cosine cycles of equal length in ``max_steps`` (warm restarts, as in SGDR; "cosine" only). Every
            cycle after the first warms up over ``restart_warmup_steps`` to ``restart_lr_ratio * lr`` and decays
            again; with ``restart_average`` it starts from the average of the last ``average_last`` checkpoints of
            the cycle before, with AdamW's moments cleared: one run does what successive ``--init`` rounds did.
        restart_lr_ratio: peak lr of the later cycles, as a fraction of ``lr``.
        restart_warmup_steps: warmup of the later cycles.
        restart_average: start each later cycle from the averaged checkpoints of the cycle before.
        weight_decay: AdamW decay on matrices (not on biases, norms or embeddings' 1-D params).
        grad_clip: max global grad norm (0 = off).
        accum_grad: micro-batches per optimizer step.
        amp: "auto" (bf16 on CUDA when supported, else fp16; off on CPU), "off", "bf16" or "fp16".
        checkpoint_every: optimizer steps between checkpoints.
        keep_checkpoints: newest step checkpoints kept on disk.
        average_last: checkpoints averaged into the final ``model.pt``.
        log_every: optimizer steps between log lines / TensorBoard scalars.
        valid_every: optimizer steps between validations (0 = only at the end).
        num_workers: data-loader worker processes.
        seed: global seed (model init, sampler, augmentation).
        augment: waveform augmentation of the training set.
    """

    max_steps: int = 2000
    max_epochs: int = 10000
    max_duration_s: float = 120.0
    num_buckets: int = 10
    lr: float = 2e-3
    warmup_steps: int = 300
    schedule: Literal["cosine", "noam", "constant"] = "cosine"
    final_lr_ratio: float = 0.02
    cycles: int = 1
    restart_lr_ratio: float = 0.5
    restart_warmup_steps: int = 100
    restart_average: bool = True
    weight_decay: float = 1e-3
    grad_clip: float = 5.0
    accum_grad: int = 1
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    checkpoint_every: int = 250
    keep_checkpoints: int = 5
    average_last: int = 3
    log_every: int = 20
    valid_every: int = 0
    num_workers: int = 2
    seed: int = 0
    augment: WaveAugmentConfig = field(default_factory=WaveAugmentConfig)


@dataclass
class FitResult:
    model_path: Path
    steps: int
    metrics: dict[str, float]


def cycle_starts(cfg: TrainConfig) -> list[int]:
    """First optimizer step of every cosine cycle after the first (empty for one cycle or a non-cosine schedule)."""
    if cfg.schedule != "cosine" or cfg.cycles <= 1:
        return []
    length = cfg.max_steps // cfg.cycles
    return [c * length for c in range(1, cfg.cycles)]


def cycle_begin(cfg: TrainConfig, step: int) -> int:
    """First step of the cycle that ends at (or contains) ``step``: the last restart before it, else 0. The
    checkpoints after it are the ones of that cycle (a checkpoint written at a restart step ends the cycle before)."""
    return max([0] + [b for b in cycle_starts(cfg) if b < step])


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of ``cfg.lr`` at optimizer step ``step`` (0-based)."""
    if cfg.schedule == "noam":
        s, warm = step + 1, max(cfg.warmup_steps, 1)
        return min(s / warm, math.sqrt(warm / s))
    starts = [0] + cycle_starts(cfg)
    begin = max(b for b in starts if b <= step)
    end = next((b for b in starts if b > step), cfg.max_steps)
    first = begin == 0
    peak = 1.0 if first else cfg.restart_lr_ratio
    s, warm = step - begin + 1, max(cfg.warmup_steps if first else cfg.restart_warmup_steps, 1)
    if s <= warm:
        return peak * s / warm
    if cfg.schedule == "constant":
        return 1.0
    progress = min((s - warm) / max(end - begin - warm, 1), 1.0)
    return cfg.final_lr_ratio + (peak - cfg.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def bf16_native(device: torch.device) -> bool:
    """Whether ``device`` multiplies bf16 natively: CUDA that supports it, or a CPU with AVX512-BF16 or AMX-BF16
    instructions (read from /proc/cpuinfo; False where it cannot be read). Without them oneDNN emulates bf16 on the
    CPU, slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags.split()))


def amp_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    if setting == "off" or (setting == "auto" and device.type != "cuda"):
        return None
    if setting == "fp16":
        return torch.float16
    if setting == "bf16" or (device.type == "cuda" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def dist_info() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment (0, 1, 0 when not distributed)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def init_distributed(device: torch.device) -> None:
    """Join torchrun's process group (when WORLD_SIZE > 1): NCCL on CUDA, bound to this process's GPU (so that
    barriers and collectives do not all land on cuda:0), gloo on CPU."""
    if dist_info()[1] > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
            dist.init_process_group("nccl", device_id=device)
        else:
            dist.init_process_group("gloo")


def resolve_device(device: str) -> torch.device:
    """"auto" -> this process's GPU if there is one, else CPU; a bare "cuda" under torchrun -> cuda:LOCAL_RANK."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", dist_info()[2])
        return torch.device("cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and resolved.index is None:
        return torch.device("cuda", dist_info()[2])
    return resolved


class _Progress:
    """Running sums between log lines."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0
        self.audio_s = 0.0
        self.start = time.perf_counter()

    def add(self, metrics: dict[str, float], audio_s: float) -> None:
        for k, v in metrics.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += 1
        self.audio_s += audio_s

    def means(self) -> dict[str, float]:
        out = {k: v / max(self.count, 1) for k, v in self.sums.items()}
        out["audio_s_per_s"] = self.audio_s / max(time.perf_counter() - self.start, 1e-9)
        return out


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed blocks (up to 32 MB each) in the heap instead of returning them to the kernel.

    Every training step allocates and frees the same activation sizes; with glibc's defaults many of those blocks
    are mmap'ed and unmapped each time, so the next step page-faults them in again (measured on the tiny recipe: 220
    million minor page faults and 36% of the CPU time in the kernel). Raising the mmap and trim thresholds keeps the
    pages mapped: the first 40 steps of the tiny recipe fault 4.3M instead of 7.45M times (a whole run: 207M instead
    of 220M; see docs/benchmarks.md). Linux/glibc only; elsewhere (or when ``mallopt`` is missing) it does nothing.
    Returns whether the settings were applied.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
        ok = libc.mallopt(m_mmap_threshold, 32 << 20) == 1
        ok &= libc.mallopt(m_trim_threshold, 1 << 30) == 1
        ok &= libc.mallopt(m_top_pad, 256 << 20) == 1
        return bool(ok)
    except (OSError, AttributeError):
        return False


def check_resumable(state: dict, meta: dict, path: Path) -> None:
    """Refuse to resume from a checkpoint written with another tokenizer; warn when the model config changed."""
    saved, current = state.get("tokenizer_sha256"), meta.get("tokenizer_sha256")
    if saved is not None and current is not None and saved != current:
        raise SpeechseqError(f"{path}: written with another tokenizer (sha256 {saved[:12]}...) than this run's "
                             f"({current[:12]}...); resume with the tokenizer it was trained with, or start a new exp")
    saved_model = state.get("config", {}).get("model")
    current_model = meta.get("config", {}).get("model")
    if saved_model is not None and current_model is not None and saved_model != current_model:
        changed = sorted(k for k in set(saved_model) | set(current_model) if saved_model.get(k) != current_model.get(k))
        log.warning("%s: the model config differs from the checkpoint's in %s; resuming anyway", path, changed)


def fit(model: nn.Module, loss_fn: LossFn, dataset: AsrDataset, sampler: DurationBucketSampler, cfg: TrainConfig,
        exp_dir: str | Path, meta: dict, sample_rate: int,
        validate: Callable[[nn.Module], dict[str, float]] | None = None,
        device: torch.device = torch.device("cpu"), pad_id: int = 0) -> FitResult:
    """Train ``model`` until ``cfg.max_steps``/``cfg.max_epochs``, resuming from ``exp_dir/checkpoints`` if any.

    Args:
        model: the (unwrapped) model, already initialised.
        loss_fn: (model, batch) -> (scalar loss, float metrics).
        dataset / sampler: training data; the sampler must already know rank and world size.
        cfg: optimisation settings.
        exp_dir: experiment folder (checkpoints/, tensorboard/, model.pt).
        meta: stored in every checkpoint (resolved config, tokenizer hash, ...).
        sample_rate: of the dataset's waves (for the audio-seconds throughput).
        validate: called on rank 0 with the model in eval mode; returns metrics to log.
    Returns:
        FitResult with the path of the averaged ``model.pt``.
    """
    exp_dir = Path(exp_dir)
    if cfg.cycles < 1 or cfg.cycles > cfg.max_steps:
        raise SpeechseqError(f"train.cycles={cfg.cycles}: must be between 1 and train.max_steps={cfg.max_steps}")
    if 0 < cfg.keep_checkpoints < cfg.average_last:
        raise SpeechseqError(f"train.keep_checkpoints={cfg.keep_checkpoints} is below train.average_last="
                             f"{cfg.average_last}: the checkpoints to average would already be deleted")
    rank, world, _ = dist_info()
    ckpt_dir = exp_dir / "checkpoints"
    if device.type == "cpu":
        keep_freed_memory()
    model.to(device)
    train_model: nn.Module = model
    if world > 1:
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-8)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg))
    dtype = amp_dtype(cfg.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)

    step, epoch, consumed, pending_rng, pending_sampler = 0, 0, 0, None, None
    resume_from: Path | None = None
    existing = ckpt.list_checkpoints(ckpt_dir)
    if existing:
        resume_from = existing[-1]
        state = ckpt.load(resume_from)
        check_resumable(state, meta, resume_from)
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            step, epoch, consumed = state["step"], state["epoch"], state["consumed"]
        except (RuntimeError, KeyError, ValueError) as e:
            raise SpeechseqError(f"{resume_from}: cannot resume from this checkpoint with the configured model "
                                 f"({type(e).__name__}: {str(e).splitlines()[0]})") from e
        ranks = state.get("rng_ranks")  # one RNG state per process (since multi-process checkpoints kept them all)
        pending_rng = ranks[rank] if ranks is not None and len(ranks) == world else state["rng"]
        pending_sampler = state.get("sampler")
        if rank == 0:
            log.info("resumed from %s (step %d, epoch %d, batch %d)", resume_from, step, epoch, consumed)

    writer = None
    if rank == 0:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(exp_dir / "tensorboard"))
    bar = tqdm(total=cfg.max_steps, initial=step, disable=rank != 0, dynamic_ncols=True,
               mininterval=0.5 if sys.stderr.isatty() else 30.0, desc="train")
    progress = _Progress()
    last_metrics: dict[str, float] = {}

    def save() -> None:
        rng = ckpt.rng_state()
        rng_ranks = None
        if world > 1:  # every process draws differently (dropout, augmentation): keep each one's state
            rng_ranks = [None] * world
            dist.all_gather_object(rng_ranks, rng)
        if rank == 0:
            payload = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                       "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "step": step,
                       "epoch": epoch, "consumed": consumed, "rng": rng, "rng_ranks": rng_ranks,
                       "sampler": {**sampler.state_dict(), "epoch": epoch, "num_batches_yielded": consumed}, **meta}
            ckpt.atomic_save(payload, ckpt_dir / f"step_{step:07d}.pt")
            ckpt.prune(ckpt_dir, cfg.keep_checkpoints)
        if world > 1:
            dist.barrier()

    restarts = cycle_starts(cfg)

    def cycle_checkpoints() -> list[Path]:
        """The last ``average_last`` checkpoints of the cycle that ends at ``step`` (of the whole run for one cycle)."""
        return ckpt.list_checkpoints(ckpt_dir, after_step=cycle_begin(cfg, step))[-max(cfg.average_last, 1):]

    def restart() -> None:
        """Start the next cosine cycle from the average of the last checkpoints, with fresh AdamW moments."""
        if not cfg.restart_average:
            return
        paths = cycle_checkpoints()
        model.load_state_dict(ckpt.average_state_dicts(paths))
        optimizer.state.clear()
        if rank == 0:
            log.info("step %d: cycle %d starts from the average of %s", step, restarts.index(step) + 2,
                     ", ".join(p.name for p in paths))

    if step in restarts:  # resumed from the checkpoint that ends a cycle: it holds the weights before the restart
        restart()

    def run_validation() -> None:
        nonlocal last_metrics
        if rank == 0 and validate is not None:
            model.eval()
            last_metrics = validate(model)
            model.train()
            for k, v in last_metrics.items():
                writer.add_scalar(f"valid/{k}", v, step)
            log.info("step %d valid %s", step, " ".join(f"{k}={v:.4g}" for k, v in last_metrics.items()))
        if world > 1:
            dist.barrier()

    model.train()
    micro = 0
    while step < cfg.max_steps and epoch < cfg.max_epochs:
        sampler.set_epoch(epoch)
        if pending_sampler is not None:  # the saved plan's identity is checked: same data, same batching
            try:
                sampler.load_state_dict(pending_sampler)
            except SpeechseqError as e:
                raise SpeechseqError(f"{resume_from}: cannot resume the data order ({e}); the training manifest or "
                                     "the batching settings changed since this checkpoint was written") from e
            pending_sampler = None
        else:
            sampler.load_state_dict({**sampler.state_dict(), "num_batches_yielded": consumed})
        dataset.set_epoch(epoch)
        loader = make_loader(dataset, sampler, cfg.num_workers, pad_id)
        iterator = iter(loader)
        if pending_rng is not None:
            ckpt.set_rng_state(pending_rng)
            pending_rng = None
        for batch in iterator:
            consumed += 1
            has_data = len(batch) > 0
            if world > 1:  # every process skips together (a device tensor: NCCL reduces CUDA tensors only)
                flag = torch.tensor([float(has_data)], device=device)
                dist.all_reduce(flag, op=dist.ReduceOp.MIN)
                has_data = flag.item() > 0
            if not has_data:
                continue
            batch = batch.to(device)
            micro += 1
            sync = micro % cfg.accum_grad == 0
            ctx = train_model.no_sync() if (world > 1 and not sync) else contextlib.nullcontext()
            with ctx:
                with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                    loss, metrics = loss_fn(train_model, batch)
                scaler.scale(loss / cfg.accum_grad).backward()
            progress.add({"loss": loss.item(), **metrics}, float(batch.wave_lens.sum()) / sample_rate)
            if not sync:
                continue
            scaler.unscale_(optimizer)
            grad_norm = nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else math.inf)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            step += 1
            bar.update(1)
            if rank == 0 and step % cfg.log_every == 0:
                means = progress.means()
                means["grad_norm"], means["lr"] = float(grad_norm), scheduler.get_last_lr()[0]
                for k, v in means.items():
                    writer.add_scalar(f"train/{k}", v, step)
                bar.set_postfix(loss=f"{means['loss']:.3f}", refresh=False)
                log.info("step %d epoch %d %s", step, epoch, " ".join(f"{k}={v:.4g}" for k, v in means.items()))
                progress.reset()
            if step % cfg.checkpoint_every == 0 or step >= cfg.max_steps or step in restarts:
                save()
            if step in restarts:
                restart()
            if cfg.valid_every and step % cfg.valid_every == 0:
                run_validation()
            if step >= cfg.max_steps:
                break
        else:
            epoch += 1
            consumed = 0
            continue
        break
    bar.close()
    if step == 0:
        raise SpeechseqError(f"{exp_dir}: training took no optimizer step (every batch was empty or unreadable, or "
                             f"train.accum_grad={cfg.accum_grad} exceeds the batches of train.max_epochs="
                             f"{cfg.max_epochs})")
    if not (ckpt_dir / f"step_{step:07d}.pt").exists():
        save()
    model_path = exp_dir / "model.pt"
    if rank == 0:
        paths = cycle_checkpoints()
        weights = ckpt.average_state_dicts(paths)
        model.load_state_dict(weights)
        ckpt.atomic_save({"model": weights, "averaged": [p.name for p in paths], "step": step, **meta}, model_path)
    run_validation()  # every rank enters: rank 0 validates the averaged model, the others wait at its barrier
    if writer is not None:
        writer.close()
    return FitResult(model_path, step, last_metrics)

