"""Pseudo-label selection by agreement, and the ``speechseq pseudolabel`` command."""

import json

import pytest

from speechseq.bin import pseudolabel
from speechseq.data.manifest import Utterance, read_manifest, write_manifest
from speechseq.data.pseudo_label import repeat_utterances, select_pseudo_labels
from speechseq.errors import SpeechseqError
from speechseq.text.score import read_hyps


def utts(texts):
    return [Utterance(id=f"u{k}", audio=f"/a/u{k}.wav", text=t, duration=1.0) for k, t in enumerate(texts)]


def test_keeps_only_utterances_with_enough_agreeing_votes_and_takes_the_label_text():
    u = utts(["one", "two", "three", "four"])  # the references: never read by the selection
    label = {"u0": "one", "u1": "five", "u2": "three", "u3": ""}
    votes = [{"u0": "one", "u1": "five", "u2": "eight", "u3": ""},
             {"u0": "one", "u1": "two", "u2": "three", "u3": ""}]
    kept, report = select_pseudo_labels(u, label, votes, min_votes=2)
    assert [(x.id, x.text) for x in kept] == [("u0", "one")]
    kept, report = select_pseudo_labels(u, label, votes, min_votes=1)
    # u1 is kept with the (wrong) label's text, not the reference; u3's empty label is never kept
    assert [(x.id, x.text) for x in kept] == [("u0", "one"), ("u1", "five"), ("u2", "three")]
    assert [x.extra["pseudo_votes"] for x in kept] == [2, 1, 1]
    assert (report.offered, report.kept) == (4, 3)
    assert report.label_wer == pytest.approx(1 / 3)  # the diagnostic: one wrong word of three


def test_no_reference_means_no_label_wer_and_extra_hypotheses_are_ignored():
    u = utts(["", ""])
    label = {"u0": "a b", "u1": "c", "other": "x"}
    kept, report = select_pseudo_labels(u, label, [], min_votes=0)
    assert [x.text for x in kept] == ["a b", "c"] and report.label_wer is None


def test_missing_hypothesis_or_bad_min_votes_is_an_error():
    u = utts(["one", "two"])
    with pytest.raises(SpeechseqError, match="vote 1 has no hypothesis for 1 of the 2"):
        select_pseudo_labels(u, {"u0": "one", "u1": "two"}, [{"u0": "one"}], min_votes=1)
    with pytest.raises(SpeechseqError, match="min_votes"):
        select_pseudo_labels(u, {"u0": "one", "u1": "two"}, [], min_votes=1)


def test_repeat_gives_unique_ids():
    r = repeat_utterances(utts(["a", "b"]), 3)
    assert [x.id for x in r] == ["u0", "u1", "u0~r1", "u1~r1", "u0~r2", "u1~r2"]
    assert len({x.id for x in r}) == 6
    with pytest.raises(SpeechseqError):
        repeat_utterances(r, 0)


def write_hyps(path, rows):
    path.write_text("".join(json.dumps({"id": i, "ref": "", "hyp": h}) + "\n" for i, h in rows))
    return str(path)


def test_cli_writes_base_then_repeated_pseudo_labels(tmp_path, capsys):
    audio = tmp_path / "x.wav"
    audio.write_bytes(b"")
    write_manifest(tmp_path / "adapt.jsonl", [Utterance(id=f"t{k}", audio=str(audio), text="ref", duration=1.0)
                                              for k in range(3)])
    write_manifest(tmp_path / "train.jsonl", [Utterance(id="b0", audio=str(audio), text="base", duration=1.0)])
    label = write_hyps(tmp_path / "ens.jsonl", [("t0", "ref"), ("t1", "nine"), ("t2", "five")])
    v1 = write_hyps(tmp_path / "v1.jsonl", [("t0", "ref"), ("t1", "nine"), ("t2", "two")])
    v2 = write_hyps(tmp_path / "v2.jsonl", [("t0", "ref"), ("t1", "one"), ("t2", "five")])
    out = tmp_path / "out.jsonl"
    args = ["--manifest", str(tmp_path / "adapt.jsonl"), "--label", label, "--vote", v1, "--vote", v2,
            "--base", str(tmp_path / "train.jsonl"), "--repeat", "2", "--out", str(out)]
    assert pseudolabel.main(args) == 0
    assert [(u.id, u.text) for u in read_manifest(out)] == [("b0", "base"), ("t0", "ref"), ("t0~r1", "ref")]
    printed = capsys.readouterr().out
    assert "kept 1 of 3 utterances (2 of 2 votes); their WER against the manifest's text 0.00%" in printed
    assert pseudolabel.main(args + ["--min-votes", "1"]) == 0
    assert [u.text for u in read_manifest(out)] == ["base", "ref", "nine", "five", "ref", "nine", "five"]
    with pytest.raises(SpeechseqError, match="already holds"):
        pseudolabel.main(args[:-4] + ["--base", str(tmp_path / "adapt.jsonl"), "--out", str(out)])


def test_bad_hypothesis_line_names_file_and_line(tmp_path):
    p = tmp_path / "h.jsonl"
    p.write_text('{"id": "a", "ref": "", "hyp": "x"}\n{"id": "b"}\n')
    with pytest.raises(SpeechseqError, match=r"h.jsonl:2: not a hypothesis line"):
        read_hyps(p)


def test_split_halves_alternates_within_each_speaker_and_text():
    from speechseq.data.manifest import split_halves

    u = [Utterance(id=f"{s}{t}{k}", audio="/a.wav", text=t, speaker=s) for s in "pq" for t in ("one", "two")
         for k in range(3)]
    a, b = split_halves(u)
    assert [x.id for x in a] == ["pone0", "pone2", "ptwo0", "ptwo2", "qone0", "qone2", "qtwo0", "qtwo2"]
    assert [x.id for x in b] == ["pone1", "ptwo1", "qone1", "qtwo1"]
