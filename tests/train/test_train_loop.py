import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from speechseq.asr.model import build_asr_model
from speechseq.config import load_config
from speechseq.data.dataset import AsrDataset, WaveAugmentConfig
from speechseq.data.manifest import read_manifest
from speechseq.data.sampler import DurationBucketSampler, utterance_durations
from speechseq.errors import SpeechseqError
from speechseq.text.tokenizer import TokenizerConfig, train_tokenizer
from speechseq.train import checkpoint as ckpt
from speechseq.train.asr import AsrExperimentConfig, asr_loss, compute_frontend_stats
from speechseq.train.loop import check_resumable, fit, lr_factor, resolve_device

ROOT = Path(__file__).resolve().parents[2]
DEBUG_CONFIG = ROOT / "recipes" / "conf" / "debug" / "ctc_debug.yaml"


class Crash(RuntimeError):
    pass


def run_fit(exp: Path, manifest: Path, crash_after: int | None, losses: list[float], overrides: tuple = ()):
    cfg = load_config(DEBUG_CONFIG, AsrExperimentConfig, ["train.max_steps=6", "train.checkpoint_every=3",
                                                           "train.num_workers=2", "model.encoder.dropout=0.1",
                                                           *overrides])
    cfg.train.augment = WaveAugmentConfig(speed_factors=(0.9, 1.0, 1.1))
    utts = read_manifest(manifest)
    tok = train_tokenizer([u.text for u in utts], exp, TokenizerConfig("char"))
    torch.manual_seed(0)
    model = build_asr_model(cfg.model, tok.vocab_size)
    dataset = AsrDataset(utts, 16000, tok.encode, cfg.train.augment, seed=0)
    compute_frontend_stats(model, AsrDataset(utts, 16000), 20, 0)
    sampler = DurationBucketSampler(utterance_durations(utts), cfg.train.max_duration_s, 2, seed=0)

    def loss_fn(m, batch):
        if crash_after is not None and len(losses) == crash_after:
            raise Crash()
        loss, metrics = asr_loss(m, batch)
        losses.append(loss.item())
        return loss, metrics

    return fit(model, loss_fn, dataset, sampler, cfg.train, exp, {"config": {}}, 16000)


def test_resume_reproduces_next_losses_exactly(tmp_path, fsdd_tiny):
    reference: list[float] = []
    run_fit(tmp_path / "a", fsdd_tiny["train"], None, reference)
    assert len(reference) == 6
    first: list[float] = []
    with pytest.raises(Crash):
        run_fit(tmp_path / "b", fsdd_tiny["train"], 4, first)  # dies during step 5; step 3 is checkpointed
    assert [p.name for p in ckpt.list_checkpoints(tmp_path / "b" / "checkpoints")] == ["step_0000003.pt"]
    resumed: list[float] = []
    result = run_fit(tmp_path / "b", fsdd_tiny["train"], None, resumed)
    assert first == reference[:4]
    assert resumed == reference[3:]  # bit-exact: steps 4..6 after resuming from step 3
    assert result.steps == 6 and (tmp_path / "b" / "model.pt").exists()


def test_warm_restart_starts_from_the_average_and_resumes_exactly(tmp_path, fsdd_tiny):
    # two cycles of 4 steps, checkpoints every 2: step 4 ends cycle 1, cycle 2 starts from avg(step 2, step 4)
    over = ("train.max_steps=8", "train.checkpoint_every=2", "train.cycles=2", "train.average_last=2",
            "train.keep_checkpoints=10", "train.warmup_steps=1", "train.restart_warmup_steps=1")
    reference: list[float] = []
    run_fit(tmp_path / "a", fsdd_tiny["train"], None, reference, over)
    no_avg: list[float] = []
    run_fit(tmp_path / "c", fsdd_tiny["train"], None, no_avg, (*over, "train.restart_average=false"))
    assert no_avg[:4] == reference[:4] and no_avg[4] != reference[4]  # the restart changed the weights
    first: list[float] = []
    with pytest.raises(Crash):
        run_fit(tmp_path / "b", fsdd_tiny["train"], 4, first, over)  # dies in step 5, right after the restart
    assert ckpt.list_checkpoints(tmp_path / "b" / "checkpoints")[-1].name == "step_0000004.pt"
    resumed: list[float] = []
    run_fit(tmp_path / "b", fsdd_tiny["train"], None, resumed, over)
    assert resumed == reference[4:]  # the resumed run redoes the restart from the same checkpoints, bit-exact
    run_fit(tmp_path / "d", fsdd_tiny["train"], None, [], (*over, "train.average_last=3"))
    # the final average takes the last cycle's checkpoints only, not step 4 (the weights before the restart)
    assert ckpt.load(tmp_path / "d" / "model.pt")["averaged"] == ["step_0000006.pt", "step_0000008.pt"]


def test_resume_refuses_changed_training_data_naming_the_checkpoint(tmp_path, fsdd_tiny):
    with pytest.raises(Crash):
        run_fit(tmp_path / "b", fsdd_tiny["train"], 4, [])  # step 3 is checkpointed
    fewer = tmp_path / "fewer.jsonl"
    lines = Path(fsdd_tiny["train"]).read_text().splitlines()
    fewer.write_text("\n".join(lines[:-2]) + "\n")
    with pytest.raises(SpeechseqError, match=r"step_0000003\.pt: cannot resume the data order.*fingerprint"):
        run_fit(tmp_path / "b", fewer, None, [])


def test_resume_checks_tokenizer_and_no_step_and_kept_checkpoints(tmp_path, fsdd_tiny):
    with pytest.raises(SpeechseqError, match="written with another tokenizer"):
        check_resumable({"tokenizer_sha256": "a" * 64}, {"tokenizer_sha256": "b" * 64}, tmp_path / "step_1.pt")
    check_resumable({"tokenizer_sha256": "a" * 64}, {"tokenizer_sha256": "a" * 64}, tmp_path / "step_1.pt")
    with pytest.raises(SpeechseqError, match="took no optimizer step"):
        run_fit(tmp_path / "e", fsdd_tiny["train"], None, [], ("train.accum_grad=1000", "train.max_epochs=1"))
    with pytest.raises(SpeechseqError, match="keep_checkpoints=2 is below train.average_last=3"):
        fit(None, None, None, None, load_config(None, AsrExperimentConfig, ["train.keep_checkpoints=2"]).train,
            tmp_path, {}, 16000)


def test_bare_cuda_under_torchrun_is_the_local_rank(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert resolve_device("cuda") == torch.device("cuda", 1)
    assert resolve_device("cuda:0") == torch.device("cuda", 0) and resolve_device("cpu") == torch.device("cpu")


def test_average_cli_takes_the_last_cycle_only(tmp_path):
    from speechseq.bin.average import main as average_main

    train = {"max_steps": 8, "cycles": 2, "schedule": "cosine"}
    for step in (2, 4, 6, 8):
        ckpt.atomic_save({"model": {"w": torch.tensor([float(step)])}, "step": step, "config": {"train": train}},
                         tmp_path / "checkpoints" / f"step_{step:07d}.pt")
    assert average_main(["--exp", str(tmp_path), "--last", "3"]) == 0
    out = ckpt.load(tmp_path / "model.pt")
    assert out["averaged"] == ["step_0000006.pt", "step_0000008.pt"] and out["model"]["w"].item() == 7.0
    with pytest.raises(SpeechseqError, match="--last 0"):
        average_main(["--exp", str(tmp_path), "--last", "0"])


def test_average_and_atomic_save(tmp_path):
    a = {"model": {"w": torch.tensor([1.0, 3.0]), "n": torch.tensor(1)}}
    b = {"model": {"w": torch.tensor([3.0, 5.0]), "n": torch.tensor(2)}}
    ckpt.atomic_save(a, tmp_path / "step_0000001.pt")
    ckpt.atomic_save(b, tmp_path / "step_0000002.pt")
    avg = ckpt.average_state_dicts(ckpt.list_checkpoints(tmp_path))
    assert [p.name for p in ckpt.list_checkpoints(tmp_path, after_step=1)] == ["step_0000002.pt"]
    assert torch.equal(avg["w"], torch.tensor([2.0, 4.0])) and avg["n"].item() == 2
    with pytest.raises(Exception):
        ckpt.atomic_save({"bad": lambda: 0}, tmp_path / "step_0000002.pt")  # unpicklable: the write fails
    assert torch.equal(ckpt.load(tmp_path / "step_0000002.pt")["model"]["w"], b["model"]["w"])  # old file intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_0000001.pt", "step_0000002.pt"]  # no temp left
    (tmp_path / "step_0000003.pt").write_bytes(b"truncated")
    with pytest.raises(SpeechseqError, match="step_0000003.pt: unreadable checkpoint"):
        ckpt.load(tmp_path / "step_0000003.pt")
    ckpt.prune(tmp_path, keep=1)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step_0000003.pt"]



def test_average_refuses_checkpoints_of_another_model_naming_the_file(tmp_path):
    model_cfg = {"encoder": {"d_model": 16}}
    base = {"model": {"w": torch.zeros(2, 3)}, "tokenizer_sha256": "a" * 64, "config": {"model": model_cfg}}
    ckpt.atomic_save(base, tmp_path / "step_0000001.pt")
    others = {"names": {**base, "model": {"v": torch.zeros(2, 3)}},
              "shape": {**base, "model": {"w": torch.zeros(3, 2)}},
              "tokenizer": {**base, "tokenizer_sha256": "b" * 64}}
    errors = {"names": r"other parameter names \(2 differ, e\.g\. \['v', 'w'\]\)",
              "shape": r"w has shape \(3, 2\), not \(2, 3\)", "tokenizer": "written with another tokenizer"}
    for what, state in others.items():
        ckpt.atomic_save(state, tmp_path / "step_0000002.pt")
        with pytest.raises(SpeechseqError, match=r"step_0000002\.pt: cannot average with .*step_0000001\.pt: "
                                                 + errors[what]):
            ckpt.average_state_dicts(ckpt.list_checkpoints(tmp_path))
    # another model config with the same parameters (a run resumed with another dropout) averages
    resumed = {"model": {"w": torch.ones(2, 3)}, "config": {"model": {"encoder": {"d_model": 16, "dropout": 0.2}}}}
    ckpt.atomic_save({**base, **resumed}, tmp_path / "step_0000002.pt")
    assert torch.equal(ckpt.average_state_dicts(ckpt.list_checkpoints(tmp_path))["w"], torch.full((2, 3), 0.5))


def test_lr_schedule(tmp_path):
    cfg = load_config(None, AsrExperimentConfig, ["train.warmup_steps=10", "train.max_steps=100"]).train
    f = [lr_factor(s, cfg) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[-1] == pytest.approx(cfg.final_lr_ratio, abs=1e-3) and all(x >= y for x, y in zip(f[9:], f[10:]))
    three = load_config(None, AsrExperimentConfig, ["train.warmup_steps=10", "train.max_steps=90", "train.cycles=3",
                                                    "train.restart_warmup_steps=5", "train.restart_lr_ratio=0.5"]).train
    g = [lr_factor(s, three) for s in range(90)]
    assert g[9] == pytest.approx(1.0) and g[34] == pytest.approx(0.5) and g[64] == pytest.approx(0.5)
    for end in (29, 59, 89):  # every cycle decays to the floor, then the next one warms up again
        assert g[end] == pytest.approx(three.final_lr_ratio, abs=2e-3)
    assert g[30] == pytest.approx(0.1) and all(x >= y for x, y in zip(g[34:59], g[35:60]))
    with pytest.raises(SpeechseqError, match="train.cycles=0"):
        fit(None, None, None, None, load_config(None, AsrExperimentConfig, ["train.cycles=0"]).train, tmp_path, {}, 16000)


def test_torchrun_two_processes(tmp_path, fsdd_tiny):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "speechseq.bin.train", "--config", str(DEBUG_CONFIG), "--exp", str(tmp_path / "exp"),
           "--train", str(fsdd_tiny["train"]), "--device", "cpu", "train.max_steps=4", "train.checkpoint_every=2"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "world size 2" in proc.stderr
    state = ckpt.load(tmp_path / "exp" / "checkpoints" / "step_0000004.pt")
    assert state["step"] == 4
    # each rank consumed its own shard: 4 steps of a 2-way split mean half the batches of one process
    assert state["consumed"] >= 1
    assert (tmp_path / "exp" / "model.pt").exists()
    # every process's RNG state is kept, so that each one resumes its own dropout and augmentation draws
    assert isinstance(state["rng_ranks"], list) and len(state["rng_ranks"]) == 2
    assert state["sampler"]["world_size"] == 2 and state["sampler"]["num_batches_yielded"] == state["consumed"]
