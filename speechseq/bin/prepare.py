"""Prepare corpus manifests.

    python -m speechseq.bin.prepare synth_en --out data/synth_en --scale tiny [--text FILE] [--num-jobs 2] [--seed 0]
    python -m speechseq.bin.prepare fsdd --out data/fsdd (--data-dir DIR | --download DEST) [--synth-digits DIR]
    python -m speechseq.bin.prepare librispeech --out data/librispeech --root DIR [--download]
        [--subsets train-clean-100,dev-clean,test-clean]
    python -m speechseq.bin.prepare aishell --out data/aishell --root DIR [--download] [--base-url URL]
        [--no-md5-check]
    python -m speechseq.bin.prepare merge --out data/train.jsonl a.jsonl b.jsonl ...
    python -m speechseq.bin.prepare halves --manifest test.jsonl --out-a test_a.jsonl --out-b test_b.jsonl

Each subcommand wraps one library function (speechseq.data.synthetic.make_corpus,
speechseq.data.corpora.fsdd.prepare_fsdd, speechseq.data.corpora.librispeech.prepare_librispeech,
speechseq.data.corpora.aishell.prepare_aishell; ``merge`` concatenates manifests, e.g. LibriSpeech training subsets;
``halves`` splits one in two, speechseq.data.manifest.split_halves) and prints the manifests written with their
utterance counts and hours of audio.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from speechseq.data.corpora import aishell
from speechseq.data.corpora.fsdd import DIGIT_WORDS, FSDD_URL, download_fsdd, prepare_fsdd
from speechseq.data.corpora.librispeech import BASE_URL, download_librispeech, prepare_librispeech
from speechseq.data.manifest import Utterance, read_manifest, split_halves, write_manifest
from speechseq.data.synthetic import make_corpus, make_word_set, scale_config
from speechseq.errors import ConfigError, ManifestError, SpeechseqError


def _summary(manifests: dict[str, Path]) -> None:
    for name, path in manifests.items():
        utts = read_manifest(path)
        hours = sum(u.duration or 0.0 for u in utts) / 3600.0
        print(f"{name:>16s} {len(utts):8d} utts {hours:9.3f} h  {path}")


def _names(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(s.strip() for s in text.split(",") if s.strip())


def _synth_en(args: argparse.Namespace) -> dict[str, Path]:
    return make_corpus(args.out, scale_config(args.scale), text_file=args.text, num_jobs=args.num_jobs,
                       seed=args.seed)


def _fsdd(args: argparse.Namespace) -> dict[str, Path]:
    data_dir = args.data_dir if args.download is None else download_fsdd(args.download, args.url or FSDD_URL)
    extra = ()
    if args.synth_variants and args.synth_digits is None:
        raise ConfigError("--synth-variants needs --synth-digits DIR")
    if args.synth_digits is not None:
        extra = (make_word_set(args.synth_digits, list(DIGIT_WORDS), num_jobs=args.num_jobs, name="digits",
                               variants=args.synth_variants),)
    return prepare_fsdd(data_dir, args.out, test_speakers=_names(args.test_speakers),
                        dev_speakers=_names(args.dev_speakers), extra_train=extra)


def _librispeech(args: argparse.Namespace) -> dict[str, Path]:
    if args.download:
        download_librispeech(args.root, args.subsets, base_url=args.base_url or BASE_URL,
                             check_md5=not args.no_md5_check)
    return prepare_librispeech(args.root, args.out, args.subsets)


def _aishell(args: argparse.Namespace) -> dict[str, Path]:
    if args.download:
        aishell.download_aishell(args.root, base_url=args.base_url or aishell.BASE_URL,
                                 md5=None if args.no_md5_check else aishell.MD5)
    return aishell.prepare_aishell(args.root, args.out)


def _merge(args: argparse.Namespace) -> dict[str, Path]:
    utts: list[Utterance] = []
    seen: dict[str, Path] = {}
    for path in args.inputs:
        for u in read_manifest(path):
            if u.id in seen:
                raise ManifestError(f"{path}: utterance id {u.id!r} also in {seen[u.id]}")
            seen[u.id] = path
            utts.append(u)
    write_manifest(args.out, utts, relative=False)
    return {args.out.stem: args.out}


def _halves(args: argparse.Namespace) -> dict[str, Path]:
    a, b = split_halves(read_manifest(args.manifest))
    if not a or not b:
        raise ManifestError(f"{args.manifest}: {len(a) + len(b)} utterances cannot make two non-empty halves")
    write_manifest(args.out_a, a, relative=False)
    write_manifest(args.out_b, b, relative=False)
    return {args.out_a.stem: args.out_a, args.out_b.stem: args.out_b}


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``python -m speechseq.bin.prepare``."""
    parser = argparse.ArgumentParser(prog="python -m speechseq.bin.prepare", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="corpus", required=True)

    p = sub.add_parser("synth_en", help="synthesize the multi-voice English corpus (espeak-ng/flite/festival)")
    p.add_argument("--out", required=True, type=Path, help="output folder (wav/ and {train,dev,test}.jsonl)")
    p.add_argument("--scale", default="tiny", choices=["tiny", "small", "full"], help="corpus size preset")
    p.add_argument("--text", default=None, help="sentences, one per line, instead of the built-in grammar")
    p.add_argument("--num-jobs", type=int, default=2, help="TTS processes run in parallel")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_synth_en)

    p = sub.add_parser("fsdd", help="Free Spoken Digit Dataset manifests (speaker-disjoint split)")
    p.add_argument("--out", required=True, type=Path, help="output folder for {train,dev,test}.jsonl")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data-dir", type=Path, help="local copy (manifest.jsonl or recordings/)")
    src.add_argument("--download", type=Path, metavar="DEST", help="download the release zip into DEST first")
    p.add_argument("--url", default=None, help="release zip URL for --download (default: the pinned tag)")
    p.add_argument("--test-speakers", default=None, help="comma-separated (default: alphabetically last speaker)")
    p.add_argument("--dev-speakers", default=None,
                   help="comma-separated (default: none; dev is every 10th training-speaker utterance)")
    p.add_argument("--synth-digits", default=None, type=Path, metavar="DIR",
                   help="also train on the ten digits spoken by every installed TTS voice, synthesized into DIR")
    p.add_argument("--synth-variants", type=int, default=0, metavar="N",
                   help="with --synth-digits: also N random speed/pitch variants of every voice")
    p.add_argument("--num-jobs", type=int, default=2, help="TTS processes run in parallel (--synth-digits)")
    p.set_defaults(func=_fsdd)

    p = sub.add_parser("librispeech", help="LibriSpeech manifests, one per subset")
    p.add_argument("--out", required=True, type=Path, help="output folder for <subset>.jsonl")
    p.add_argument("--root", required=True, type=Path, help="folder holding LibriSpeech/ (download target)")
    p.add_argument("--download", action="store_true", help="download and extract the subsets into --root first")
    p.add_argument("--subsets", default="train-clean-100,dev-clean,test-clean", help="comma-separated subsets")
    p.add_argument("--base-url", default=None, help="mirror folder holding <subset>.tar.gz")
    p.add_argument("--no-md5-check", action="store_true", help="skip the md5 check of downloaded archives")
    p.set_defaults(func=_librispeech)

    p = sub.add_parser("aishell", help="AISHELL-1 Mandarin manifests (train, dev, test)")
    p.add_argument("--out", required=True, type=Path, help="output folder for {train,dev,test}.jsonl")
    p.add_argument("--root", required=True, type=Path, help="folder holding data_aishell/ (download target)")
    p.add_argument("--download", action="store_true", help="download and extract data_aishell.tgz into --root first")
    p.add_argument("--base-url", default=None, help="mirror folder holding data_aishell.tgz")
    p.add_argument("--no-md5-check", action="store_true", help="skip the md5 check of the downloaded archive")
    p.set_defaults(func=_aishell)

    p = sub.add_parser("merge", help="concatenate manifests (ids must be unique across them)")
    p.add_argument("--out", required=True, type=Path, help="merged manifest (audio paths written absolute)")
    p.add_argument("inputs", nargs="+", type=Path, help="manifests to concatenate, in order")
    p.set_defaults(func=_merge)
    p = sub.add_parser("halves", help="split a manifest in two, alternately within each (speaker, text) group")
    p.add_argument("--manifest", required=True, type=Path, help="the manifest to split")
    p.add_argument("--out-a", required=True, type=Path, help="the first, third, ... utterance of every group")
    p.add_argument("--out-b", required=True, type=Path, help="the second, fourth, ... utterance of every group")
    p.set_defaults(func=_halves)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the prepare command line; returns the exit status (2 on bad input, with the error on stderr)."""
    args = build_parser().parse_args(argv)
    try:
        manifests = args.func(args)
        _summary(manifests)
    except SpeechseqError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    from speechseq.bin import run

    raise SystemExit(run(main))
