"""speechseq score: WER/CER of a hypothesis file, or a table over several decode summaries.

    python -m speechseq.bin.score --hyp exp/x/decode_test/hyp.jsonl
    python -m speechseq.bin.score --table exp/*/decode_*/summary.json
    python -m speechseq.bin.score --pooled --table exp/cv_*/decode_test_greedy/summary.json   # + pooled WER rows
    python -m speechseq.bin.score --hyp A/hyp.jsonl --compare B/hyp.jsonl   # is B better than A? (paired bootstrap)
    python -m speechseq.bin.score --hyp A/hyp.jsonl A_seed1/hyp.jsonl --compare B/hyp.jsonl B_seed1/hyp.jsonl
                                                     # the same with two training runs of each, errors pooled
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from speechseq.errors import SpeechseqError
from speechseq.text.score import error_rates, paired_bootstrap_runs, read_hyps


def model_name(model_dir: Path) -> str:
    """``exp/paraformer_tiny`` -> paraformer_tiny; its MWER fine-tuned ``exp/paraformer_tiny/mwer`` ->
    paraformer_tiny+mwer; a second training run ``exp/ctc/seed1`` (``--seeds``) -> ctc/seed1."""
    if model_dir.name == "mwer":
        return f"{model_dir.parent.name}+mwer"
    if re.fullmatch(r"seed\d+", model_dir.name):
        return f"{model_dir.parent.name}/{model_dir.name}"
    return model_dir.name


def method_label(summary: dict) -> str:
    """A decode summary's method with its beam and LM settings, e.g. "beam (beam 10) + LM (weight 0.6, bonus 1.5)"."""
    label = summary["method"] + (f" (beam {summary['beam_size']})" if summary["method"] == "beam" else "")
    if summary.get("lm"):
        label += f" + LM (weight {summary['lm_weight']}, bonus {summary['lm_bonus']})"
    if summary.get("ensemble"):
        label += f" + ensemble of {len(summary['ensemble']) + 1}"
    if summary.get("warps"):
        label += f" + VTLN ({len(summary['warps'])} warps" + (", per speaker)" if summary.get("warp_by") == "speaker"
                                                             else ")")
    return label + (", int8" if summary.get("int8") else "") + (", bf16" if summary.get("bf16") else "")


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
    reference words; CER is not pooled ("-"). Summaries are grouped by method only, so two decodes of one manifest
    with the same method (two models, or a rerun) would count its utterances twice: that raises SpeechseqError."""
    rows = []
    groups: dict[str, list[dict]] = {}
    for s in summaries:  # a Paraformer's MWER fine-tuned model (<exp>/mwer) is a model of its own
        model = "MWER model, " if Path(s.get("model_dir", "")).name == "mwer" else ""
        group = groups.setdefault(model + method_label(s), [])
        twice = [t for t in group if "manifest" in s and t.get("manifest") == s["manifest"]]
        if twice:
            raise SpeechseqError(f"--pooled: {s['manifest']} is decoded with {model + method_label(s)} by both "
                                 f"{twice[0].get('model_dir')} and {s.get('model_dir')}; pooling would count its "
                                 f"utterances twice (pool one summary per test set, e.g. per fold)")
        group.append(s)
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


def format_comparison(paths_a: list[Path], paths_b: list[Path], resamples: int) -> str:
    """Paired bootstrap of B's WER against A's, matched by utterance id. Each system is one hyp.jsonl, or several
    (one per training run, e.g. seeds: their errors are pooled per utterance, :func:`paired_bootstrap_runs`); every
    file must hold the same ids as A's first, each with the same reference text."""
    files = [*paths_a, *paths_b]
    tables = [read_hyps(path) for path in files]
    first = tables[0]
    ids = [x["id"] for x in first]
    runs: list[list[str]] = []
    for path, rows in zip(files, tables):
        by_id = {x["id"]: x for x in rows}
        missing = [i for i in ids if i not in by_id]
        if missing or len(by_id) != len(first):
            raise SpeechseqError(f"{paths_a[0]} and {path} do not hold the same utterances ({len(first)} vs "
                                 f"{len(by_id)} ids; e.g. {missing[:3] or sorted(set(by_id) - set(ids))[:3]})")
        other = [x for x in first if x["ref"] != by_id[x["id"]]["ref"]]
        if other:
            x = other[0]
            raise SpeechseqError(f"{paths_a[0]} and {path} hold other references for {len(other)} utterances, e.g. "
                                 f"{x['id']}: {x['ref']!r} vs {by_id[x['id']]['ref']!r}")
        runs.append([by_id[i]["hyp"] for i in ids])
    c = paired_bootstrap_runs([x["ref"] for x in first], runs[:len(paths_a)], runs[len(paths_a):], resamples)
    pooled = f", errors pooled over {c.runs_a} vs {c.runs_b} runs" if c.runs_a > 1 or c.runs_b > 1 else ""
    return (f"A {100 * c.wer_a:.2f}%  B {100 * c.wer_b:.2f}%  B - A {100 * c.delta:+.2f} points, 95% interval "
            f"[{100 * c.ci_low:+.2f}, {100 * c.ci_high:+.2f}] over {c.utterances} utts ({c.resamples} paired "
            f"resamples{pooled}); P(B not better) = {c.p_not_better:.3f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="speechseq score", description=__doc__.splitlines()[0])
    p.add_argument("--hyp", nargs="+", help="hyp.jsonl with id/ref/hyp per line (several: one WER line each; with "
                   "--compare, system A's runs)")
    p.add_argument("--table", nargs="+", help="summary.json files to tabulate")
    p.add_argument("--compare", nargs="+", help="with --hyp: a second system's hyp.jsonl over the same utterances "
                   "(several: one per training run, pooled as --hyp's are); prints the paired bootstrap of its WER "
                   "against --hyp's")
    p.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples for --compare")
    p.add_argument("--pooled", action="store_true",
                   help="with --table: add one row per decoding method pooling its errors over all the summaries "
                   "(rows are grouped by method only: give one model recipe's summaries, one per test set, such "
                   "as the folds of a cross-validation; one manifest decoded twice with a method is an error)")
    args = p.parse_args(argv)
    if not args.hyp and not args.table:
        p.error("give --hyp or --table")
    if args.pooled and not args.table:
        p.error("--pooled adds rows to --table")
    if args.compare and not args.hyp:
        p.error("--compare compares with --hyp")
    for path in args.hyp or []:
        rows = read_hyps(Path(path))
        r = error_rates([x["ref"] for x in rows], [x["hyp"] for x in rows])
        name = f"{path}: " if len(args.hyp) > 1 or args.compare else ""
        print(f"{name}WER {100 * r.wer:.2f}% ({r.substitutions} sub, {r.deletions} del, {r.insertions} ins of "
              f"{r.ref_words} words, {r.utterances} utts)  CER {100 * r.cer:.2f}%")
    if args.compare:
        print(format_comparison([Path(x) for x in args.hyp], [Path(x) for x in args.compare], args.resamples))
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
