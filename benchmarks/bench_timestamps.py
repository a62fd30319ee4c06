"""Word-timestamp error against known boundaries, for every model kind, side by side.

    python benchmarks/bench_timestamps.py --sentences egs/synth_en/asr/data/tiny/test.jsonl --voice flite-slt \
        --model ctc=egs/synth_en/asr/exp/ctc_tiny --model aed=egs/synth_en/asr/exp/aed_tiny \
        --model paraformer=egs/synth_en/asr/exp/paraformer_tiny

The reference set is connected speech from a festival voice with the word boundaries festival reports
(``--connected``, ``speechseq.data.synthetic.make_connected_alignment_set``), or words synthesized one by one by
``--voice``, trimmed to their active region and joined with random silences (``make_alignment_set``; out of domain for
models trained on connected speech). For each model two rows: "forced" (CTC forced alignment of the
reference text with the model's CTC head) and "own" (the model transcribes with word timestamps: CIF firing for
Paraformer, CTC alignment of the hypothesis for CTC and AED; its words matching reference words are scored).
MAE = mean over the scored words of |start error| and |end error|, averaged.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import markdown_table, print_header, set_threads  # noqa: E402
from speechseq.bin.align import align_manifest  # noqa: E402
from speechseq.data.manifest import read_manifest  # noqa: E402
from speechseq.data.synthetic import available_voices, make_alignment_set, make_connected_alignment_set  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", required=True, metavar="NAME=DIR")
    p.add_argument("--sentences", required=True, help="manifest whose texts are spoken (e.g. a test set)")
    p.add_argument("--num", type=int, default=30, help="utterances")
    p.add_argument("--voice", default="flite-slt", help="voice id (see speechseq.data.synthetic.available_voices)")
    p.add_argument("--connected", action="store_true", help="connected festival speech with festival's word times")
    p.add_argument("--work", type=Path, help="folder for the alignment set (default: a temporary one)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    set_threads(args.threads)
    print_header("word timestamps vs known boundaries", {"voice": args.voice, "utterances": args.num,
                                                         "connected": args.connected})
    voices = {v.id: v for v in available_voices()}
    if args.voice not in voices:
        p.error(f"voice {args.voice!r} not installed (available: {', '.join(sorted(voices))})")
    work = args.work or Path(tempfile.mkdtemp(prefix="speechseq_ts_"))
    texts = [u.text for u in read_manifest(args.sentences)[: args.num]]
    if args.connected:
        manifest = make_connected_alignment_set(work, texts, voices[args.voice])
    else:
        manifest = make_alignment_set(work, texts, voices[args.voice])
    rows = []
    for spec in args.model:
        name, model_dir = spec.split("=", 1)
        for mode, hyp in (("forced", False), ("own", True)):
            r = align_manifest(model_dir, str(manifest), str(work / f"{name}_{mode}.jsonl"), "cpu", hypothesis=hyp)
            if "mae_s" not in r:
                rows.append([name, mode, 0, float("nan"), float("nan"), float("nan")])
                continue
            rows.append([name, mode, r["scored_words"], 1000 * r["start_mae_s"], 1000 * r["end_mae_s"],
                         1000 * r["mae_s"]])
    kind = "connected speech" if args.connected else "words joined by pauses"
    print(f"\n{len(read_manifest(manifest))} utterances ({kind}) by {args.voice} with known word boundaries ({work})\n")
    print(markdown_table(["model", "times", "scored words", "start MAE ms", "end MAE ms", "MAE ms"], rows, 1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
