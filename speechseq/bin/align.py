"""speechseq align: word start/end times of a manifest's utterances as JSONL (CTC forced alignment of the transcripts,
or the model's own timestamps of its hypotheses with --hypothesis).

    python -m speechseq.bin.align --model-dir exp/ctc_tiny --manifest data/test.jsonl --out exp/ctc_tiny/align.jsonl
    python -m speechseq.bin.align --hypothesis --model-dir exp/paraformer --manifest ... --out ...

Forced alignment uses the CTC head (every model kind has one). With ``--hypothesis`` the recognizer transcribes each
utterance with word timestamps (CIF firing for Paraformer, CTC alignment of the hypothesis for CTC and AED); its
words that match reference words (longest common subsequence) are scored.

When the manifest lines carry reference ``words: [[word, start_s, end_s], ...]`` (see
``speechseq.data.synthetic.make_alignment_set``), the mean absolute boundary error is printed as well.
"""

from __future__ import annotations

import argparse
import difflib
import json
from pathlib import Path

import torch

from speechseq.asr.ctc import forced_align, word_times
from speechseq.audio.io import load_audio
from speechseq.data.manifest import iter_manifest
from speechseq.infer.recognizer import Recognizer, load_model_dir


def boundary_error(ref: list[list], hyp: list[list]) -> tuple[float, float, int] | None:
    """Absolute start/end errors in seconds between [[word, start, end], ...] lists, summed over the words they
    share: the hypothesis words matched to equal reference words by a longest-common-subsequence alignment
    (difflib), so a transcript with errors still times its correct words. Returns (sum of start errors, sum of end
    errors, matched words), or None when no word matches."""
    matcher = difflib.SequenceMatcher(a=[r[0] for r in ref], b=[h[0] for h in hyp], autojunk=False)
    pairs = [(ref[block.a + k], hyp[block.b + k]) for block in matcher.get_matching_blocks() for k in range(block.size)]
    if not pairs:
        return None
    return sum(abs(r[1] - h[1]) for r, h in pairs), sum(abs(r[2] - h[2]) for r, h in pairs), len(pairs)


@torch.no_grad()
def align_manifest(model_dir: str, manifest: str, out_path: str, device: str = "cpu", hypothesis: bool = False) -> dict:
    """Align every utterance's reference text (failures are reported and skipped), or with ``hypothesis`` time the
    words of the model's own transcript.

    Returns:
        {"aligned": count, and when references exist "start_mae_s", "end_mae_s", "mae_s" (means over the scored
        words), "scored" (utterances), "scored_words"}.
    """
    model, tokenizer, kind = load_model_dir(model_dir, device)
    ctc = getattr(model, "ctc", model)  # Paraformer and AED keep their encoder + CTC head in .ctc
    asr = Recognizer(model, tokenizer, torch.device(device), kind) if hypothesis else None
    sr = model.frontend.sample_rate
    n = 0
    errors: list[tuple[float, float]] = []
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    with open(out_path, "w") as f:
        for u in iter_manifest(manifest):
            wave, _ = load_audio(u.audio, sr, u.offset, u.duration)
            if asr is not None:
                words = asr.transcribe((wave, sr), word_timestamps=True)[0].words or []
            else:
                out = ctc(torch.from_numpy(wave)[None].to(device), torch.tensor([len(wave)], device=device))
                tokens = tokenizer.encode(u.text)
                try:
                    spans = forced_align(ctc.alignment_scores(out.log_probs)[0, : int(out.lens[0])], tokens)
                except ValueError as e:
                    print(f"{u.id}: {e}")
                    continue
                words = word_times(spans, [tokenizer.id_to_piece(t) for t in tokens], model.frame_shift_s)
            hyp = [[w.word, round(w.start_s, 3), round(w.end_s, 3)] for w in words]
            f.write(json.dumps({"id": u.id, "words": hyp}) + "\n")
            n += 1
            if "words" in u.extra and (err := boundary_error(u.extra["words"], hyp)) is not None:
                errors.append(err)
    result: dict = {"aligned": n}
    if errors:
        words = sum(e[2] for e in errors)
        result["start_mae_s"] = sum(e[0] for e in errors) / words
        result["end_mae_s"] = sum(e[1] for e in errors) / words
        result["mae_s"] = (result["start_mae_s"] + result["end_mae_s"]) / 2
        result["scored"] = len(errors)
        result["scored_words"] = words
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="speechseq align", description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", required=True)
    p.add_argument("--manifest", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--hypothesis", action="store_true",
                   help="time the model's own transcript (its native timestamps) instead of aligning the reference")
    args = p.parse_args(argv)
    r = align_manifest(args.model_dir, args.manifest, args.out, args.device, args.hypothesis)
    extra = ""
    if "mae_s" in r:
        extra = (f"; word boundary error vs reference: start {1000 * r['start_mae_s']:.1f} ms, end "
                 f"{1000 * r['end_mae_s']:.1f} ms, mean {1000 * r['mae_s']:.1f} ms over {r['scored_words']} words of {r['scored']} utterances")
    print(f"aligned {r['aligned']} utterances -> {args.out}{extra}")
    return 0


if __name__ == "__main__":
    from speechseq.bin import run

    raise SystemExit(run(main))
