"""Kaldi data directory reading/writing: lossless round trips and errors naming file:line."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechseq.data.kaldi import read_kaldi_dir, write_kaldi_dir
from speechseq.data.manifest import Utterance, read_manifest, write_manifest
from speechseq.errors import ManifestError

SAMPLE_RATE = 8000


def _wav(path: Path, duration_s: float) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(duration_s * SAMPLE_RATE), dtype=np.float32), SAMPLE_RATE)
    return str(path)


def _fields(u: Utterance) -> tuple:
    return (u.id, u.audio, u.text, u.speaker, u.offset, u.duration)


def test_round_trip_whole_files_without_segments(tmp_path: Path) -> None:
    utts = [
        Utterance("spkB-2", _wav(tmp_path / "wav" / "b2.wav", 0.5), "second one", speaker="spkB", duration=0.5),
        Utterance("spkA-1", _wav(tmp_path / "wav" / "a1.wav", 0.25), "first", speaker="spkA", duration=0.25),
        Utterance("nospk", _wav(tmp_path / "wav" / "c.wav", 0.3), "", language="de"),  # no speaker, unknown duration
    ]
    manifest = tmp_path / "m.jsonl.gz"
    write_manifest(manifest, utts)
    write_kaldi_dir(tmp_path / "kaldi", read_manifest(manifest))
    kaldi = tmp_path / "kaldi"
    assert not (kaldi / "segments").exists()
    assert (kaldi / "wav.scp").read_text().splitlines()[0] == f"nospk {tmp_path / 'wav' / 'c.wav'}"
    assert (kaldi / "text").read_text().splitlines() == ["nospk", "spkA-1 first", "spkB-2 second one"]
    assert (kaldi / "utt2spk").read_text().splitlines() == ["nospk nospk", "spkA-1 spkA", "spkB-2 spkB"]
    assert (kaldi / "spk2utt").read_text().splitlines() == ["nospk nospk", "spkA spkA-1", "spkB spkB-2"]
    back = read_kaldi_dir(kaldi)
    assert [_fields(u) for u in back] == sorted(_fields(u) for u in utts)
    assert [u.language for u in back] == ["de", "", ""]
    write_manifest(tmp_path / "back.jsonl", back)
    assert read_manifest(tmp_path / "back.jsonl") == sorted(read_manifest(manifest), key=lambda u: u.id)


def test_round_trip_with_segments(tmp_path: Path) -> None:
    long_wav = _wav(tmp_path / "wav" / "session.wav", 3.0)
    other = _wav(tmp_path / "other" / "session.wav", 1.0)  # same stem: recording ids must not clash
    utts = [
        Utterance("s1-a", long_wav, "one", offset=0.1, duration=0.7, speaker="s1"),
        Utterance("s1-b", long_wav, "two", offset=1.3, duration=1.1, speaker="s1"),
        Utterance("s2-a", other, "three", speaker="s2"),  # whole file, duration unknown -> end -1
        Utterance("s2-b", _wav(tmp_path / "wav" / "short.wav", 2.0), "four", duration=0.3, speaker="s2"),
    ]
    write_kaldi_dir(tmp_path / "kaldi", utts)
    segments = (tmp_path / "kaldi" / "segments").read_text().splitlines()
    assert [line.split()[0] for line in segments] == ["s1-a", "s1-b", "s2-a", "s2-b"]
    assert segments[2].endswith(" 0.0 -1.0")
    rec_ids = [line.split()[1] for line in segments]
    assert rec_ids[0] == rec_ids[1] and len(set(rec_ids)) == 3
    wav_scp = (tmp_path / "kaldi" / "wav.scp").read_text().splitlines()
    assert wav_scp == sorted(wav_scp) and len(wav_scp) == 3
    back = read_kaldi_dir(tmp_path / "kaldi")
    assert [_fields(u) for u in back] == [_fields(u) for u in utts]


def test_rewrite_drops_stale_segments(tmp_path: Path) -> None:
    wav = _wav(tmp_path / "a.wav", 1.0)
    write_kaldi_dir(tmp_path / "k", [Utterance("a", wav, "x", offset=0.5)])
    assert (tmp_path / "k" / "segments").exists()
    write_kaldi_dir(tmp_path / "k", [Utterance("a", wav, "x")])
    assert not (tmp_path / "k" / "segments").exists()
    assert _fields(read_kaldi_dir(tmp_path / "k")[0]) == ("a", wav, "x", "", 0.0, None)


def test_reads_hand_written_dir_with_relative_paths(tmp_path: Path) -> None:
    _wav(tmp_path / "corpus" / "r1.wav", 2.0)
    kaldi = tmp_path / "data" / "train"
    kaldi.mkdir(parents=True)
    (kaldi / "wav.scp").write_text("r1 corpus/r1.wav\n")
    (kaldi / "segments").write_text("spk-r1-000 r1 0.00 1.25\nspk-r1-001 r1 1.25 2.00\n")
    (kaldi / "text").write_text("spk-r1-000 HELLO  THERE\nspk-r1-001\n")
    (kaldi / "utt2spk").write_text("spk-r1-000 spk\nspk-r1-001 spk\n")
    utts = read_kaldi_dir(kaldi, audio_root=tmp_path)
    assert [u.audio for u in utts] == [str(tmp_path / "corpus" / "r1.wav")] * 2
    assert [u.text for u in utts] == ["HELLO  THERE", ""]
    assert [u.offset for u in utts] == [0.0, 1.25]
    assert utts[0].duration == pytest.approx(1.25) and utts[1].duration == pytest.approx(0.75)
    assert {u.speaker for u in utts} == {"spk"}


def _kaldi_dir(tmp_path: Path, **files: str) -> Path:
    kaldi = tmp_path / "k"
    kaldi.mkdir()
    defaults = {"wav.scp": "a /x/a.wav\nb /x/b.wav\n", "text": "a hi\nb there\n"}
    for name, content in {**defaults, **files}.items():
        (kaldi / name).write_text(content)
    return kaldi


@pytest.mark.parametrize(
    ("files", "where", "fragment"),
    [
        ({"wav.scp": "a /x/a.wav\nb sox /x/b.wav -t wav - |\n"}, "wav.scp:2", "unsupported"),
        ({"wav.scp": "a /x/a.wav\nb -\n"}, "wav.scp:2", "standard input"),
        ({"wav.scp": "a /x/a.wav\nb /x/feats.ark:1234\n"}, "wav.scp:2", "ark offset"),
        ({"wav.scp": "a /x/a.ark:17[0:100]\n"}, "wav.scp:1", "ark offset"),
        ({"wav.scp": "a /x/a.wav\nb\n"}, "wav.scp:2", "expected"),
        ({"wav.scp": "a /x/a.wav\na /x/b.wav\n"}, "wav.scp:2", "duplicate id 'a'"),
        ({"text": "a hi\nc who\nb there\n"}, "text:2", "'c'"),
        ({"segments": "a a 0 1\nb a 0.5\n"}, "segments:2", "expected 4 fields, got 3"),
        ({"segments": "a a 0 1\nb zz 0 1\n"}, "segments:2", "recording 'zz'"),
        ({"segments": "a a 0 1\nb a x 1\n"}, "segments:2", "not a number"),
        ({"segments": "a a 0 1\nb a 2 1\n"}, "segments:2", "not after start"),
        ({"utt2spk": "a s1\nb s1 extra\n"}, "utt2spk:2", "expected 2 fields"),
        ({"utt2dur": "a 1.0\nb -2\n"}, "utt2dur:2", "positive"),
    ],
)
def test_malformed_dir_names_file_and_line(tmp_path: Path, files: dict, where: str, fragment: str) -> None:
    kaldi = _kaldi_dir(tmp_path, **files)
    with pytest.raises(ManifestError, match=fragment) as err:
        read_kaldi_dir(kaldi)
    assert f"{kaldi / where}:" in str(err.value)


def test_non_utf8_file_names_file_and_line(tmp_path: Path) -> None:
    kaldi = _kaldi_dir(tmp_path)
    (kaldi / "text").write_bytes(b"a hi\nb caf\xe9\n")
    with pytest.raises(ManifestError, match="not UTF-8") as err:
        read_kaldi_dir(kaldi)
    assert f"{kaldi / 'text'}:2:" in str(err.value)


def test_utterance_missing_from_text_is_named(tmp_path: Path) -> None:
    kaldi = _kaldi_dir(tmp_path, text="a hi\n")
    with pytest.raises(ManifestError, match="no transcript for utterance.*'b'") as err:
        read_kaldi_dir(kaldi)
    assert str(kaldi / "text") in str(err.value)


def test_utt2spk_must_cover_every_utterance(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="utt2spk: no entry for utterance.*'b'"):
        read_kaldi_dir(_kaldi_dir(tmp_path, utt2spk="a s1\n"))


def test_missing_required_file(tmp_path: Path) -> None:
    kaldi = _kaldi_dir(tmp_path)
    (kaldi / "text").unlink()
    with pytest.raises(ManifestError, match="text: required Kaldi file not found"):
        read_kaldi_dir(kaldi)


@pytest.mark.parametrize(
    "utt",
    [
        Utterance("has space", "/x/a.wav", "t"),
        Utterance("a", "/x/a.wav", "two\nlines"),
        Utterance("a", "/x/a.wav", "t", speaker="s 1"),
    ],
)
def test_unwritable_utterances_are_refused(tmp_path: Path, utt: Utterance) -> None:
    with pytest.raises(ManifestError, match="'"):
        write_kaldi_dir(tmp_path / "k", [utt])


def test_duplicate_ids_are_refused_on_write(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="duplicate utterance id 'a'"):
        write_kaldi_dir(tmp_path / "k", [Utterance("a", "/x/a.wav", "t"), Utterance("a", "/x/b.wav", "u")])


def test_manifest_keeps_numeric_speaker_zero(tmp_path: Path) -> None:
    import json

    wav = _wav(tmp_path / "a.wav", 0.5)
    rows = [{"id": "a", "audio": wav, "text": "x", "speaker": 0}, {"id": "b", "audio": wav, "text": "y"}]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [u.speaker for u in read_manifest(tmp_path / "m.jsonl")] == ["0", ""]
