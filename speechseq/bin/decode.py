"""speechseq decode: transcribe a manifest with a trained model; writes hypotheses and a summary with WER and RTF.

    python -m speechseq.bin.decode --model-dir exp/ctc_tiny --manifest data/test.jsonl --out exp/ctc_tiny/decode_test
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from speechseq.audio.io import load_audio
from speechseq.data.manifest import read_manifest
from speechseq.errors import SpeechseqError
from speechseq.infer.ensemble import ensemble_transcribe
from speechseq.infer.recognizer import load_asr
from speechseq.text.score import error_rates


def decode_manifest(model_dir: str, manifest: str, out_dir: str, method: str = "greedy", beam_size: int = 10,
                    batch_size: int = 16, device: str = "cpu", lm: str | None = None, lm_weight: float = 0.5,
                    lm_bonus: float = 1.0, int8: bool = False, bf16: bool = False, warps: list[float] | None = None,
                    ensemble: list[str] | None = None, warp_by: str = "utterance") -> dict:
    """Decode every utterance; write ``hyp.jsonl`` and ``summary.json`` (WER, CER, RTF) into ``out_dir``. ``lm``: an
    ARPA n-gram over the model's tokenizer pieces, fused into the beam search (CTC, AED, Paraformer). ``int8``:
    int8 dynamic-quantized Linear layers (CPU). ``bf16``: the network under bf16 autocast. ``warps``: test-time
    VTLN over these factors (``transcribe``'s ``warps``); a single model's hypothesis lines then carry their
    ``warp``, and in an ensemble every member picks its own factor per utterance. ``ensemble``: more model
    directories decoded together with ``model_dir`` by n-best rescoring
    (:func:`speechseq.infer.ensemble.ensemble_transcribe`; ``lm`` is over ``model_dir``'s tokenizer). ``warp_by``:
    "utterance" (a factor per utterance) or "speaker" (one per manifest speaker, :meth:`Recognizer.group_warps`; an
    utterance without a speaker is its own group; one model only)."""
    if warp_by not in ("utterance", "speaker"):
        raise SpeechseqError(f"decode: warp_by must be 'utterance' or 'speaker', got {warp_by!r}")
    if warp_by == "speaker" and (not warps or ensemble):
        raise SpeechseqError("decode: a warp per speaker needs --warps and one model (no --ensemble)")
    asr = load_asr(model_dir, device, int8=int8, bf16=bf16)
    members = [asr, *(load_asr(d, device, int8=int8, bf16=bf16) for d in ensemble or [])]
    fusion = asr.load_lm(lm, lm_weight, lm_bonus) if lm else None
    utts = read_manifest(manifest)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # one model: read at its rate; an ensemble: at the file's own, so that each member resamples once, to its rate
    rate = asr.sample_rate if len(members) == 1 else None
    waves = [load_audio(u.audio, rate, u.offset, u.duration) for u in utts]
    audio_s = sum(len(w) / sr for w, sr in waves)
    start = time.perf_counter()
    if len(members) > 1:
        results = ensemble_transcribe(members, waves, batch_size=batch_size, method=method, beam_size=beam_size,
                                      lm=fusion, warps=warps)
    else:
        groups = [u.speaker or f"utterance {u.id}" for u in utts] if warp_by == "speaker" else None
        results = asr.transcribe(waves, batch_size=batch_size, method=method, beam_size=beam_size, lm=fusion,
                                 warps=warps, warp_groups=groups)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    with open(out / "hyp.jsonl", "w") as f:
        for u, r in zip(utts, results):
            row = {"id": u.id, "ref": u.text, "hyp": r.text}
            f.write(json.dumps(row if r.warp is None else {**row, "warp": r.warp}) + "\n")
    summary = {"model_dir": str(model_dir), "manifest": str(manifest), "method": method,
               "beam_size": beam_size if method == "beam" else 1, "utterances": len(utts), "audio_s": audio_s,
               "decode_s": elapsed, "rtf": elapsed / max(audio_s, 1e-9), "threads": torch.get_num_threads()}
    if int8:
        summary["int8"] = True
    if bf16:
        summary["bf16"] = True
    if len(members) > 1:
        summary["ensemble"] = [str(d) for d in ensemble or []]
    if warps:
        summary["warps"] = [float(w) for w in warps]
        summary["warp_by"] = warp_by
        if warp_by == "speaker":  # the factor each speaker was decoded at
            chosen = {u.speaker: r.warp for u, r in zip(utts, results) if u.speaker}
            summary["speaker_warps"] = dict(sorted(chosen.items()))
    if lm:
        summary.update(lm=str(lm), lm_weight=lm_weight, lm_bonus=lm_bonus)
    if any(u.text.strip() for u in utts):
        rates = error_rates([u.text for u in utts], [r.text for r in results])
        summary.update(wer=rates.wer, cer=rates.cer, substitutions=rates.substitutions, deletions=rates.deletions,
                       insertions=rates.insertions, ref_words=rates.ref_words)
        by_speaker: dict[str, tuple[list[str], list[str]]] = {}
        for u, r in zip(utts, results):
            if u.speaker:
                refs, hyps = by_speaker.setdefault(u.speaker, ([], []))
                refs.append(u.text)
                hyps.append(r.text)
        if len(by_speaker) > 1:
            summary["wer_by_speaker"] = {spk: error_rates(*pair).wer for spk, pair in sorted(by_speaker.items())}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _factors(text: str) -> list[float]:
    """--warps "0.9,1,1.1" -> [0.9, 1.0, 1.1]; each positive."""
    try:
        factors = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}") from None
    if not factors or not all(0.0 < f < float("inf") for f in factors):
        raise argparse.ArgumentTypeError(f"warp factors must be positive numbers, got {text!r}")
    return factors


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="speechseq decode", description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", required=True)
    p.add_argument("--manifest", required=True)
    p.add_argument("--out", required=True, help="output folder for hyp.jsonl and summary.json")
    p.add_argument("--method", default="greedy", choices=["greedy", "beam"],
                   help="beam: CTC prefix beam, AED beam search, Paraformer beam over its CIF slots (= greedy "
                        "without --lm)")
    p.add_argument("--beam-size", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="cpu")
    p.add_argument("--lm", help="ARPA n-gram over the model's tokenizer pieces (speechseq lm); "
                                "with --method beam")
    p.add_argument("--lm-weight", type=float, default=0.5, help="LM log-prob weight in the fused score")
    p.add_argument("--lm-bonus", type=float, default=1.0, help="score added per token (offsets the LM's cost)")
    p.add_argument("--int8", action="store_true", help="decode with int8 dynamic-quantized Linear layers (CPU only)")
    p.add_argument("--bf16", action="store_true",
                   help="run the network under bf16 autocast (CUDA, or a CPU with AVX512-BF16/AMX; pays off for large "
                        "models: docs/benchmarks.md)")
    p.add_argument("--warps", type=_factors, help="test-time VTLN: comma-separated frequency-warp factors, e.g. "
                   "0.85,0.9,0.95,1,1.05,1.1,1.15,1.2; each utterance is decoded at the one whose CTC posteriors are "
                   "the most certain (one more encoder pass per factor)")
    p.add_argument("--warp-by", choices=["utterance", "speaker"], default="utterance",
                   help="with --warps: choose the factor per utterance, or per manifest speaker (speaker-level VTLN: "
                        "the factor with the lowest entropy over the speaker's utterances; one model only)")
    p.add_argument("--ensemble", action="append", metavar="MODEL_DIR",
                   help="another model directory decoded together with --model-dir (repeat for more): every member "
                        "proposes its n-best, the best mean CTC log-likelihood (+ LM) wins")
    args = p.parse_args(argv)
    s = decode_manifest(args.model_dir, args.manifest, args.out, args.method, args.beam_size, args.batch_size,
                        args.device, args.lm, args.lm_weight, args.lm_bonus, args.int8, args.bf16,
                        args.warps, args.ensemble, args.warp_by)
    wer = f"WER {100 * s['wer']:.2f}% CER {100 * s['cer']:.2f}% " if "wer" in s else ""
    print(f"{args.manifest}: {s['utterances']} utts {wer}RTF {s['rtf']:.4f} -> {args.out}")
    return 0


if __name__ == "__main__":
    from speechseq.bin import run

    raise SystemExit(run(main))
