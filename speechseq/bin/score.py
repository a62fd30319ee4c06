"""speechseq score: WER/CER of a hypothesis file, or a table over several decode summaries.

    python -m speechseq.bin.score --hyp exp/x/decode_test/hyp.jsonl
    python -m speechseq.bin.score --table exp/*/decode_*/summary.json
    python -m speechseq.bin.score --pooled --table exp/cv_*/decode_test_greedy/summary.json   # + pooled WER rows
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from speechseq.text.score import error_rates


def model_name(model_dir: Path) -> str:
    """``exp/paraformer_tiny`` -> paraformer_tiny; its MWER fine-tuned ``exp/paraformer_tiny/mwer`` ->
    paraformer_tiny+mwer."""
    return f"{model_dir.parent.name}+mwer" if model_dir.name == "mwer" else model_dir.name


def method_label(summary: dict) -> str:
    """A decode summary's method with its beam and LM settings, e.g. "beam (beam 10) + LM (weight 0.6, bonus 1.5)"."""
    label = summary["method"] + (f" (beam {summary['beam_size']})" if summary["method"] == "beam" else "")
    if summary.get("lm"):
        label += f" + LM (weight {summary['lm_weight']}, bonus {summary['lm_bonus']})"
    return label


def format_table(summaries: list[dict], names: list[str]) -> str:
    """A Markdown table: one row per decode summary."""
    rows = ["| decode | method | utts | WER % | CER % | sub | del | ins | RTF |", "|---|---|---|---|---|---|---|---|---|"]
    for name, s in zip(names, summaries):
        rows.append(f"| {name} | {method_label(s)} | {s['utterances']} | {100 * s.get('wer', float('nan')):.2f} | "
                    f"{100 * s.get('cer', float('nan')):.2f} | {s.get('substitutions', '-')} | "
                    f"{s.get('deletions', '-')} | {s.get('insertions', '-')} | {s['rtf']:.4f} |")
    return "\n".join(rows)


def pooled_rows(summaries: list[dict]) -> str:
    """Table rows (the columns of :func:`format_table`) pooling the decodes of each method (with its beam and LM
    settings) over several test sets of one model recipe, e.g. the folds of a cross-validation: WER = all errors / all
    reference words; CER is not pooled ("-")."""
    rows = []
    groups: dict[str, list[dict]] = {}
    for s in summaries:  # a Paraformer's MWER fine-tuned model (<exp>/mwer) is a model of its own
        model = "MWER model, " if Path(s.get("model_dir", "")).name == "mwer" else ""
        groups.setdefault(model + method_label(s), []).append(s)
    for method, group in groups.items():
        if any("ref_words" not in s for s in group):
            continue
        errors = sum(s["substitutions"] + s["deletions"] + s["insertions"] for s in group)
        words = sum(s["ref_words"] for s in group)
        audio = sum(s["audio_s"] for s in group)
        rtf = sum(s["rtf"] * s["audio_s"] for s in group) / audio
        rows.append(f"| pooled over {len(group)} | {method} | {sum(s['utterances'] for s in group)} | "
                    f"{100 * errors / max(words, 1):.2f} | - | "
                    + " | ".join(str(sum(s[k] for s in group)) for k in ("substitutions", "deletions", "insertions"))
                    + f" | {rtf:.4f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="speechseq score", description=__doc__.splitlines()[0])
    p.add_argument("--hyp", help="hyp.jsonl with id/ref/hyp per line")
    p.add_argument("--table", nargs="+", help="summary.json files to tabulate")
    p.add_argument("--pooled", action="store_true",
                   help="with --table: add one row per decoding method pooling its errors over all the summaries")
    args = p.parse_args(argv)
    if not args.hyp and not args.table:
        p.error("give --hyp or --table")
    if args.pooled and not args.table:
        p.error("--pooled adds rows to --table")
    if args.hyp:
        rows = [json.loads(line) for line in Path(args.hyp).read_text().splitlines() if line.strip()]
        r = error_rates([x["ref"] for x in rows], [x["hyp"] for x in rows])
        print(f"WER {100 * r.wer:.2f}% ({r.substitutions} sub, {r.deletions} del, {r.insertions} ins of "
              f"{r.ref_words} words, {r.utterances} utts)  CER {100 * r.cer:.2f}%")
    if args.table:
        paths = [Path(x) for x in args.table]
        names = [f"{model_name(p.parent.parent)}/{p.parent.name}" for p in paths]
        summaries = [json.loads(p.read_text()) for p in paths]
        print(format_table(summaries, names))
        if args.pooled:
            print(pooled_rows(summaries))
    return 0


if __name__ == "__main__":
    from speechseq.bin import run

    raise SystemExit(run(main))
