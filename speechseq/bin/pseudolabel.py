"""speechseq pseudolabel: a training manifest of unlabelled audio, transcribed by decodes that agree.

    python -m speechseq.bin.pseudolabel --manifest adapt.jsonl --label exp/ens/hyp.jsonl \\
        --vote exp/a/hyp.jsonl --vote exp/b/hyp.jsonl --vote exp/c/hyp.jsonl --min-votes 2 --out pseudo.jsonl
    python -m speechseq.bin.pseudolabel ... --base train.jsonl --repeat 4 --out train_plus_pseudo.jsonl

Keeps an utterance of ``--manifest`` when the ``--label`` decode's transcript is non-empty and equals that of at least
``--min-votes`` of the ``--vote`` decodes; its text becomes that transcript (the manifest's own text is never used,
except to print how good the kept labels are when it has any). ``--base`` puts a labelled manifest's lines first,
and ``--repeat`` writes the kept utterances that many times, to weight them against it.
"""

from __future__ import annotations

import argparse

from speechseq.data.manifest import read_manifest, write_manifest
from speechseq.data.pseudo_label import repeat_utterances, select_pseudo_labels
from speechseq.errors import SpeechseqError
from speechseq.text.score import read_hyps


def _hyps(path: str) -> dict[str, str]:
    return {row["id"]: row["hyp"] for row in read_hyps(path)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="speechseq pseudolabel", description=__doc__.splitlines()[0])
    p.add_argument("--manifest", required=True, help="the audio to label (JSONL; its text, if any, is not used)")
    p.add_argument("--label", required=True, help="hyp.jsonl of the decode whose transcripts become the labels")
    p.add_argument("--vote", action="append", default=[], help="hyp.jsonl of a decode that votes (repeatable)")
    p.add_argument("--min-votes", type=int, default=None, help="agreeing votes needed (default: all of them)")
    p.add_argument("--base", help="a labelled manifest written first into --out (e.g. the training set)")
    p.add_argument("--repeat", type=int, default=1, help="write each kept utterance this many times")
    p.add_argument("--out", required=True, help="the manifest to write")
    args = p.parse_args(argv)
    utts = read_manifest(args.manifest)
    min_votes = len(args.vote) if args.min_votes is None else args.min_votes
    kept, report = select_pseudo_labels(utts, _hyps(args.label), [_hyps(v) for v in args.vote],
                                        min_votes)
    base = read_manifest(args.base) if args.base else []
    pseudo = repeat_utterances(kept, args.repeat)
    clash = {u.id for u in base} & {u.id for u in pseudo}
    if clash:
        raise SpeechseqError(f"--base {args.base} already holds {len(clash)} of the pseudo-labelled ids, e.g. "
                             f"{sorted(clash)[:3]}: label audio that is not in the labelled set")
    write_manifest(args.out, base + pseudo)
    quality = ("" if report.label_wer is None
               else f"; their WER against the manifest's text {100 * report.label_wer:.2f}%")
    print(f"kept {report.kept} of {report.offered} utterances ({min_votes} of {len(args.vote)} votes){quality} -> "
          f"{args.out} ({len(base)} labelled + {len(pseudo)} pseudo-labelled lines)")
    return 0


if __name__ == "__main__":
    from speechseq.bin import run

    raise SystemExit(run(main))
