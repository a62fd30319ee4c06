"""speechseq align: word start/end times of a manifest's utterances as JSONL (CTC forced alignment of the transcripts,
or the model's own timestamps of its hypotheses with --hypothesis).

    python -m speechseq.bin.align --model-dir exp/ctc_tiny --manifest data/test.jsonl --out exp/ctc_tiny/align.jsonl
    python -m speechseq.bin.align --hypothesis --model-dir exp/paraformer --manifest ... --out ...
    python -m speechseq.bin.align --hypothesis --aligner exp/aligner --model-dir exp/ctc_small --manifest ... --out ...

Forced alignment uses the CTC head (every model kind has one). With ``--hypothesis`` the recognizer transcribes each
utterance with word timestamps (CIF firing for Paraformer, CTC alignment of the hypothesis for CTC and AED); its
words that match reference words (longest common subsequence) are scored. ``--aligner DIR`` times that transcript
by another model's forced alignment instead: one model recognises, a second (limited-context, calibrated) one times.

When the manifest lines carry reference ``words: [[word, start_s, end_s], ...]`` (see
``speechseq.data.synthetic.make_connected_alignment_set``), the mean absolute boundary error is printed as well.

``--calibrate`` measures a model's emission delay instead: the median signed start and end errors of its forced
alignments against such a reference manifest (preferably of other voices than the ones it will time) are written
to ``<model-dir>/timing.json``, and from then on ``align`` and ``transcribe(word_timestamps=True)`` subtract them.
A model with limited right context (chunked attention) emits its tokens with a near-constant delay, which this
removes; a full-context model's error is drift, which it does not.

    python -m speechseq.bin.align --calibrate --model-dir exp/ctc_tiny_chunk4 --manifest calib/align.jsonl
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import statistics
from pathlib import Path

import torch

from speechseq.audio.io import load_audio
from speechseq.data.manifest import iter_manifest
from speechseq.errors import SpeechseqError
from speechseq.infer.recognizer import TIMING_FILE, Recognizer, load_asr, load_model_dir, read_timing


def signed_errors(ref: list[list], hyp: list[list]) -> list[tuple[float, float]]:
    """(hyp start - ref start, hyp end - ref end) in seconds for every word of two [[word, start, end], ...] lists
    that they share: hypothesis words matched to equal reference words by a longest-common-subsequence alignment
    (difflib), so a transcript with errors still times its correct words."""
    matcher = difflib.SequenceMatcher(a=[r[0] for r in ref], b=[h[0] for h in hyp], autojunk=False)
    return [(hyp[block.b + k][1] - ref[block.a + k][1], hyp[block.b + k][2] - ref[block.a + k][2])
            for block in matcher.get_matching_blocks() for k in range(block.size)]


@torch.no_grad()
def align_manifest(model_dir: str, manifest: str, out_path: str, device: str = "cpu", hypothesis: bool = False,
                   timing: tuple[float, float] | None = None, aligner_dir: str | None = None) -> dict:
    """Align every utterance's reference text (failures are reported and skipped), or with ``hypothesis`` time the
    words of the model's own transcript.

    Args:
        timing: (start, end) shifts added to the word times; None reads the model directory's ``timing.json``.
        aligner_dir: with ``hypothesis``, time the transcript by this model directory's forced alignment (and its
            ``timing.json``) instead of the model's own timestamps.

    Returns:
        {"aligned": count, and when references exist "start_mae_s", "end_mae_s", "mae_s" (means over the scored
        words), "scored" (utterances), "scored_words", "signed" (every scored word's (start, end) signed error)}.
    """
    if aligner_dir is not None and not hypothesis:
        raise SpeechseqError("align: --aligner times a model's own transcript; it needs --hypothesis")
    model, tokenizer, kind = load_model_dir(model_dir, device)
    timing = read_timing(model_dir) if timing is None else timing
    asr = Recognizer(model, tokenizer, torch.device(device), kind, timing)
    aligner = load_asr(aligner_dir, device) if aligner_dir is not None else None
    sr = asr.sample_rate
    n = scored = 0
    signed: list[tuple[float, float]] = []
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    with open(out_path, "w") as f:
        for u in iter_manifest(manifest):
            wave, _ = load_audio(u.audio, sr, u.offset, u.duration)
            if hypothesis:
                words = asr.transcribe((wave, sr), word_timestamps=True, aligner=aligner)[0].words or []
            else:
                aligned = asr.align([(wave, sr)], [u.text])[0]
                if aligned is None:
                    print(f"{u.id}: cannot align {len(tokenizer.encode(u.text))} tokens in "
                          f"{len(wave) / sr:.2f} s of audio")
                    continue
                words = aligned
            hyp = [[w.word, round(w.start_s, 3), round(w.end_s, 3)] for w in words]
            f.write(json.dumps({"id": u.id, "words": hyp}) + "\n")
            n += 1
            if "words" in u.extra and (pairs := signed_errors(u.extra["words"], hyp)):
                signed += pairs
                scored += 1
    result: dict = {"aligned": n}
    if signed:
        result["start_mae_s"] = sum(abs(s) for s, _ in signed) / len(signed)
        result["end_mae_s"] = sum(abs(e) for _, e in signed) / len(signed)
        result["mae_s"] = (result["start_mae_s"] + result["end_mae_s"]) / 2
        result["scored"] = scored
        result["scored_words"] = len(signed)
        result["signed"] = signed
    return result


def calibrate_timing(model_dir: str, manifest: str, out_path: str, device: str = "cpu") -> dict:
    """Forced-align a manifest with reference word times, without any shift, and write the negated median signed
    start and end errors to ``<model_dir>/timing.json`` (atomically). Returns what was written."""
    r = align_manifest(model_dir, manifest, out_path, device, timing=(0.0, 0.0))
    if "signed" not in r:
        raise SpeechseqError(f"{manifest}: no utterance with reference 'words' [[word, start_s, end_s], ...] "
                             "could be aligned; calibration needs them")
    timing = {"start_shift_s": -statistics.median(s for s, _ in r["signed"]),
              "end_shift_s": -statistics.median(e for _, e in r["signed"]), "manifest": str(manifest),
              "words": len(r["signed"]), "mae_before_s": r["mae_s"]}
    path = Path(model_dir) / TIMING_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(timing, indent=2) + "\n")
    os.replace(tmp, path)
    return timing



def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="speechseq align", description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", required=True)
    p.add_argument("--manifest", required=True)
    p.add_argument("--out", help="word times JSONL (default with --calibrate: <model-dir>/calibration_align.jsonl)")
    p.add_argument("--device", default="cpu")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--hypothesis", action="store_true",
                      help="time the model's own transcript (its native timestamps) instead of aligning the reference")
    p.add_argument("--aligner", metavar="MODEL_DIR",
                   help="with --hypothesis: time the transcript by this model's CTC forced alignment (and its "
                        f"{TIMING_FILE}) instead of the model's own timestamps")
    mode.add_argument("--calibrate", action="store_true",
                      help="measure the model's emission delay on a manifest with reference word times and store it "
                           f"in <model-dir>/{TIMING_FILE}")
    args = p.parse_args(argv)
    if args.out is None and not args.calibrate:
        p.error("--out is required (except with --calibrate)")
    if args.aligner and not args.hypothesis:
        p.error("--aligner times a model's own transcript: it needs --hypothesis")
    if args.calibrate:
        out = args.out or str(Path(args.model_dir) / "calibration_align.jsonl")
        t = calibrate_timing(args.model_dir, args.manifest, out, args.device)
        print(f"calibrated on {t['words']} words (MAE before {1000 * t['mae_before_s']:.1f} ms): start shift "
              f"{1000 * t['start_shift_s']:+.1f} ms, end shift {1000 * t['end_shift_s']:+.1f} ms -> "
              f"{Path(args.model_dir) / TIMING_FILE}")
        return 0
    r = align_manifest(args.model_dir, args.manifest, args.out, args.device, args.hypothesis,
                       aligner_dir=args.aligner)
    extra = ""
    if "mae_s" in r:
        extra = (f"; word boundary error vs reference: start {1000 * r['start_mae_s']:.1f} ms, end "
                 f"{1000 * r['end_mae_s']:.1f} ms, mean {1000 * r['mae_s']:.1f} ms over {r['scored_words']} words of {r['scored']} utterances")
    print(f"aligned {r['aligned']} utterances -> {args.out}{extra}")
    return 0


if __name__ == "__main__":
    from speechseq.bin import run

    raise SystemExit(run(main))
