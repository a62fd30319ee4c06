"""speechseq align: CTC forced alignment of a manifest's transcripts; writes word start/end times as JSONL.

    python -m speechseq.bin.align --model-dir exp/ctc_tiny --manifest data/test.jsonl --out exp/ctc_tiny/align.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from speechseq.asr.ctc import forced_align, word_times
from speechseq.audio.io import load_audio
from speechseq.data.manifest import iter_manifest
from speechseq.infer.recognizer import load_model_dir


@torch.no_grad()
def align_manifest(model_dir: str, manifest: str, out_path: str, device: str = "cpu") -> int:
    """Align every utterance's reference text; returns how many were aligned (failures are reported, skipped)."""
    model, tokenizer = load_model_dir(model_dir, device)
    sr = model.frontend.sample_rate
    n = 0
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    with open(out_path, "w") as f:
        for u in iter_manifest(manifest):
            wave, _ = load_audio(u.audio, sr, u.offset, u.duration)
            out = model(torch.from_numpy(wave)[None].to(device), torch.tensor([len(wave)], device=device))
            tokens = tokenizer.encode(u.text)
            try:
                spans = forced_align(out.log_probs[0, : int(out.lens[0])], tokens)
            except ValueError as e:
                print(f"{u.id}: {e}")
                continue
            words = word_times(spans, [tokenizer.id_to_piece(t) for t in tokens], model.frame_shift_s)
            f.write(json.dumps({"id": u.id, "words": [[w.word, round(w.start_s, 3), round(w.end_s, 3)]
                                                      for w in words]}) + "\n")
            n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="speechseq align", description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", required=True)
    p.add_argument("--manifest", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    n = align_manifest(args.model_dir, args.manifest, args.out, args.device)
    print(f"aligned {n} utterances -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
