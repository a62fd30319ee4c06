"""speechseq score: WER/CER of a hypothesis file, or a table over several decode summaries.

    python -m speechseq.bin.score --hyp exp/x/decode_test/hyp.jsonl
    python -m speechseq.bin.score --table exp/*/decode_*/summary.json
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


def format_table(summaries: list[dict], names: list[str]) -> str:
    """A Markdown table: one row per decode summary."""
    rows = ["| decode | method | utts | WER % | CER % | sub | del | ins | RTF |", "|---|---|---|---|---|---|---|---|---|"]
    for name, s in zip(names, summaries):
        method = s["method"] + (f" (beam {s['beam_size']})" if s["method"] == "beam" else "")
        if s.get("lm"):
            method += f" + LM (weight {s['lm_weight']}, bonus {s['lm_bonus']})"
        rows.append(f"| {name} | {method} | {s['utterances']} | {100 * s.get('wer', float('nan')):.2f} | "
                    f"{100 * s.get('cer', float('nan')):.2f} | {s.get('substitutions', '-')} | "
                    f"{s.get('deletions', '-')} | {s.get('insertions', '-')} | {s['rtf']:.4f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="speechseq score", description=__doc__.splitlines()[0])
    p.add_argument("--hyp", help="hyp.jsonl with id/ref/hyp per line")
    p.add_argument("--table", nargs="+", help="summary.json files to tabulate")
    args = p.parse_args(argv)
    if args.hyp:
        rows = [json.loads(line) for line in Path(args.hyp).read_text().splitlines() if line.strip()]
        r = error_rates([x["ref"] for x in rows], [x["hyp"] for x in rows])
        print(f"WER {100 * r.wer:.2f}% ({r.substitutions} sub, {r.deletions} del, {r.insertions} ins of "
              f"{r.ref_words} words, {r.utterances} utts)  CER {100 * r.cer:.2f}%")
    if args.table:
        paths = [Path(x) for x in args.table]
        names = [f"{model_name(p.parent.parent)}/{p.parent.name}" for p in paths]
        print(format_table([json.loads(p.read_text()) for p in paths], names))
    if not args.hyp and not args.table:
        p.error("give --hyp or --table")
    return 0


if __name__ == "__main__":
    from speechseq.bin import run

    raise SystemExit(run(main))
