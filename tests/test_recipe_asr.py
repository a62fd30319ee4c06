"""recipes/asr.sh stages 1-5 with the debug CTC config on a few real FSDD digits: tokenizer and n-gram LM, training,
decoding (greedy, prefix beam, prefix beam + LM) and the WER table."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def recipe_env(tmp_path: Path, fsdd_tiny, config: str) -> tuple[Path, dict[str, str]]:
    """A data folder of a few FSDD digits (dev doubles as test) and the environment recipes/asr.sh reads:
    returns the experiment folder and the environment."""
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(fsdd_tiny["train"], data / "train.jsonl")
    shutil.copy(fsdd_tiny["dev"], data / "dev.jsonl")
    shutil.copy(fsdd_tiny["dev"], data / "test.jsonl")
    exp = tmp_path / "exp"
    env = {**os.environ, "data": str(data), "exp": str(exp), "config": str(ROOT / config), "PYTHONPATH": str(ROOT),
           "OMP_NUM_THREADS": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return exp, env


def test_ctc_recipe_builds_an_lm_and_decodes_with_it(tmp_path, fsdd_tiny):
    exp, env = recipe_env(tmp_path, fsdd_tiny, "recipes/conf/debug/ctc_debug.yaml")
    proc = subprocess.run([str(ROOT / "recipes/asr.sh"), "--stage", "1", "--lm-order", "3", "--lm-weight", "0.3",
                           "--beam-size", "3"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (exp / "lm.arpa").read_text().count("-grams:") == 3
    summary = json.loads((exp / "decode_test_beam_lm" / "summary.json").read_text())
    assert summary["method"] == "beam" and summary["lm"] == str(exp / "lm.arpa") and summary["lm_weight"] == 0.3
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| exp/decode_test_")]
    assert [r.split("|")[2].strip() for r in rows] == ["greedy", "beam (beam 3)",
                                                        "beam (beam 3) + LM (weight 0.3, bonus 1.5)"]
    # --lm-order 0: no LM, no fused decode
    proc = subprocess.run([str(ROOT / "recipes/asr.sh"), "--stage", "4", "--force", "true", "--lm-order", "0",
                           "--beam-size", "3"], env={**env, "exp": str(exp)}, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert sum(line.startswith("| exp/decode_test_") for line in proc.stdout.splitlines()) == 2
    # --warps: every method also with speaker-level test-time VTLN, in its own row
    proc = subprocess.run([str(ROOT / "recipes/asr.sh"), "--stage", "4", "--force", "true", "--lm-order", "0",
                           "--beam-size", "3", "--warps", "0.9,1,1.1"], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = [line.split("|")[1:3] for line in proc.stdout.splitlines() if line.startswith("| exp/decode_test_")]
    assert [(n.strip(), m.strip()) for n, m in rows] == [
        ("exp/decode_test_greedy", "greedy"), ("exp/decode_test_greedy_vtln", "greedy + VTLN (3 warps, per speaker)"),
        ("exp/decode_test_beam", "beam (beam 3)"),
        ("exp/decode_test_beam_vtln", "beam (beam 3) + VTLN (3 warps, per speaker)")]
    # --init: fine-tune the trained model on the same data; its tokenizer (and so its LM pieces) carries over
    ft = tmp_path / "exp_ft"
    proc = subprocess.run([str(ROOT / "recipes/asr.sh"), "--stage", "1", "--stop-stage", "2", "--init", str(exp),
                           "--lm-order", "2", "--train-args", "train.max_steps=2"], env={**env, "exp": str(ft)},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (ft / "tokenizer.model").read_bytes() == (exp / "tokenizer.model").read_bytes()
    assert (ft / "model.pt").is_file() and (ft / "lm.arpa").read_text().count("-grams:") == 2
    proc = subprocess.run([str(ROOT / "recipes/asr.sh"), "--stage", "1", "--stop-stage", "1", "--init",
                           str(tmp_path / "nowhere")], env={**env, "exp": str(tmp_path / "exp_bad")},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0 and "not a model directory" in proc.stderr


def test_paraformer_recipe_decodes_greedy_and_with_the_lm(tmp_path, fsdd_tiny):
    exp, env = recipe_env(tmp_path, fsdd_tiny, "recipes/conf/debug/paraformer_debug.yaml")
    proc = subprocess.run([str(ROOT / "recipes/asr.sh"), "--stage", "1", "--lm-order", "3", "--beam-size", "3",
                           "--mwer-steps", "0", "--train-args", "train.max_steps=4"], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (exp / "lm.arpa").read_text().count("-grams:") == 3
    summary = json.loads((exp / "decode_test_beam_lm" / "summary.json").read_text())
    assert summary["method"] == "beam" and summary["lm"] == str(exp / "lm.arpa")
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| exp/decode_test_")]
    assert [r.split("|")[2].strip() for r in rows] == ["greedy", "beam (beam 3) + LM (weight 0.6, bonus 1.5)"]
    # the MWER ablation on the trained model: control and an MWER variant, decoded and compared by bootstrap
    proc = subprocess.run([str(ROOT / "recipes/mwer_ablation.sh"), "--model-dir", str(exp), "--data", env["data"],
                           "--steps", "2", "--variants", "control nbest_inference", "--seeds", "2"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    cfg = (exp / "ablation" / "nbest_inference" / "config.yaml").read_text()
    assert "mwer_slots: inference" in cfg and "mwer_sampling: nbest" in cfg and "seed: 0" in cfg
    for v in ("control", "nbest_inference"):  # the second run of each variant, with the next seed
        assert "seed: 1" in (exp / "ablation" / v / "seed1" / "config.yaml").read_text()
        assert (exp / "ablation" / v / "seed1" / "decode_test" / "hyp.jsonl").is_file()
    compared = [line for line in proc.stdout.splitlines() if line.startswith("nbest_inference vs control")]
    assert len(compared) == 2 and all("P(B not better)" in line and "pooled over 2 vs 2 runs" in line
                                      for line in compared)
    proc = subprocess.run([str(ROOT / "recipes/mwer_ablation.sh"), "--model-dir", str(exp), "--data", env["data"],
                           "--variants", "control oracle"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0 and "unknown variant 'oracle'" in proc.stderr


def test_seeds_train_an_ensemble_and_decode_it_beside_the_first_model(tmp_path, fsdd_tiny):
    import torch

    exp, env = recipe_env(tmp_path, fsdd_tiny, "recipes/conf/debug/ctc_debug.yaml")
    proc = subprocess.run([str(ROOT / "recipes/asr.sh"), "--stage", "1", "--seeds", "2", "--lm-order", "2",
                           "--decode-methods", "greedy beam_lm", "--beam-size", "2", "--train-args",
                           "train.max_steps=4"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "seed: 1" in (exp / "seed1" / "config.yaml").read_text()
    assert (exp / "seed1" / "tokenizer.model").read_bytes() == (exp / "tokenizer.model").read_bytes()
    first, second = (torch.load(d / "model.pt", map_location="cpu", weights_only=False) for d in (exp, exp / "seed1"))
    w0, w1 = (m["model"] if "model" in m else m for m in (first, second))
    assert any(not torch.equal(w0[k], w1[k]) for k in w0), "the second seed trained the same weights"
    for method in ("greedy", "beam_lm"):
        summary = json.loads((exp / f"decode_test_{method}_ens2" / "summary.json").read_text())
        assert summary["ensemble"] == [str(exp / "seed1")]
    rows = [line.split("|")[2].strip() for line in proc.stdout.splitlines() if line.startswith("| exp/decode_test_")]
    assert rows == ["greedy", "greedy + ensemble of 2", "beam (beam 2) + LM (weight 0.6, bonus 1.5)",
                    "beam (beam 2) + LM (weight 0.6, bonus 1.5) + ensemble of 2"]
    proc = subprocess.run([str(ROOT / "recipes/asr.sh"), "--stage", "4", "--force", "true", "--seeds", "3",
                           "--lm-order", "2", "--decode-methods", "greedy"], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode != 0 and f"ensemble member {exp / 'seed2'} is not trained" in proc.stderr
    proc = subprocess.run([str(ROOT / "recipes/asr.sh"), "--stage", "5", "--seeds", "0"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0 and "--seeds must be a positive number" in proc.stderr


def test_fsdd_self_training_adapts_on_one_half_and_scores_the_other(tmp_path, fsdd_tiny, shared_data):
    """egs/fsdd/asr/self_train.sh on a 2-seed fold: the pseudo-labels of each test half are the labelling decode's
    transcripts where the votes agree (never the references), every seed is fine-tuned on them, and each half is
    decoded by the models adapted on the other, pooled over the whole test set."""
    import torch

    exp, env = recipe_env(tmp_path, fsdd_tiny, "recipes/conf/debug/ctc_debug.yaml")
    rows = [json.loads(line) for line in (shared_data / "fsdd" / "manifest.jsonl").read_text().splitlines()]
    theo = [{**r, "audio": str(shared_data / "fsdd" / r["audio"])} for r in rows if r["speaker"] == "fsdd_theo"]
    test = [r for r in theo if r["text"] == "one"][10:14] + [r for r in theo if r["text"] == "two"][10:14]
    (tmp_path / "data" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in test))
    proc = subprocess.run([str(ROOT / "recipes/asr.sh"), "--stage", "1", "--stop-stage", "2", "--seeds", "2",
                           "--lm-order", "2", "--train-args", "train.max_steps=4"], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    script = str(ROOT / "egs/fsdd/asr/self_train.sh")
    common = ["--seeds", "2", "--steps", "2", "--repeat", "2"]
    proc = subprocess.run([script, *common, "--stop-stage", "0"], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = exp / "self_train"
    halves = [[json.loads(x)["id"] for x in (out / f"test_{h}.jsonl").read_text().splitlines()] for h in "ab"]
    assert sorted(halves[0] + halves[1]) == sorted(r["id"] for r in test) and len(halves[0]) == len(halves[1]) == 4
    # known decodes in place of the 4-step models' output: the label says "nine" everywhere, vote 0 agrees on
    # three utterances of each half and vote 1 on two of those
    agree0, agree1 = halves[0][:3] + halves[1][:3], halves[0][:2] + halves[1][:2]
    for name, agree in (("label", None), ("vote0", agree0), ("vote1", agree1)):
        (out / name / "hyp.jsonl").write_text("".join(
            json.dumps({"id": r["id"], "ref": r["text"], "hyp": "nine" if agree is None or r["id"] in agree else "x"})
            + "\n" for r in test))
    proc = subprocess.run([script, *common, "--stage", "1"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    base = len((tmp_path / "data" / "train.jsonl").read_text().splitlines())
    for h, half in zip("ab", halves):
        lines = [json.loads(x) for x in (out / f"train_{h}.jsonl").read_text().splitlines()]
        pseudo = lines[base:]
        assert [x["id"] for x in pseudo] == half[:2] + [f"{i}~r1" for i in half[:2]]  # both votes agree: 2, twice
        assert {x["text"] for x in pseudo} == {"nine"}  # the label's text, not the reference
    for d in ("adapt_a", "adapt_a/seed1", "adapt_b", "adapt_b/seed1"):
        src = exp / d.split("/", 1)[1] if "/" in d else exp
        w0, w1 = (torch.load(p / "model.pt", map_location="cpu", weights_only=False) for p in (src, out / d))
        w0, w1 = (m["model"] if "model" in m else m for m in (w0, w1))
        assert any(not torch.equal(w0[k], w1[k]) for k in w0), f"{d} did not train"
    for h, other in (("a", "b"), ("b", "a")):
        summary = json.loads((out / f"adapt_{h}" / f"decode_test_{other}_greedy_ens2" / "summary.json").read_text())
        assert summary["manifest"] == str(out / f"test_{other}.jsonl") and summary["utterances"] == 4
        assert summary["ensemble"] == [str(out / f"adapt_{h}" / "seed1")]
    pooled = [line for line in (out / "RESULTS.md").read_text().splitlines() if line.startswith("| pooled over 2")]
    assert len(pooled) == 2 and all(line.split("|")[3].strip() == "8" for line in pooled)
