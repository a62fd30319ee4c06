"""Free Spoken Digit Dataset (FSDD): real speakers saying single digits 0-9, 8 kHz mono wav, CC BY-SA 4.0.

    root = download_fsdd("downloads/fsdd")                  # or a local copy with a manifest.jsonl
    manifests = prepare_fsdd(root, "data/fsdd")               # {"train": ..., "dev": ..., "test": ...}

Two input layouts are accepted:

* a local copy with ``manifest.jsonl`` (as in ``shared/data/fsdd``: id, audio relative to the folder, text, speaker,
  duration, ...); its lines are used as they are (extra keys kept);
* the upstream release layout ``recordings/{digit}_{speaker}_{index}.wav`` (also one folder level down, as the
  release zip unpacks), where text is the digit as an English word, id ``fsdd_{digit}_{speaker}_{index}`` and
  speaker ``fsdd_{speaker}`` (the same naming as the local copy).

Test is speaker-disjoint from train: by default the alphabetically last speaker (``yweweler``) is the test speaker.
With only 4-6 speakers, holding out a second speaker for dev would leave too few voices to learn from, so by default
dev is every 10th utterance of the training speakers (used only to monitor training); pass ``dev_speakers`` for a
speaker-disjoint dev set. Manifests point
at the original files by absolute path; audio is never copied.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from speechseq.audio.io import audio_info
from speechseq.data.manifest import Utterance, read_manifest, write_manifest
from speechseq.errors import ConfigError, ManifestError, SpeechseqError

FSDD_URL = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.zip"
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")


def _find_recordings(data_dir: Path) -> Path | None:
    if (data_dir / "recordings").is_dir():
        return data_dir / "recordings"
    found = sorted(p for p in data_dir.glob("*/recordings") if p.is_dir())
    return found[0] if len(found) == 1 else None


def _from_recordings(recordings: Path) -> list[Utterance]:
    utts = []
    keyed = []
    for wav in recordings.glob("*.wav"):
        m = _NAME.match(wav.name)
        if m is None:
            raise ManifestError(f"{wav}: file name is not {{digit}}_{{speaker}}_{{index}}.wav")
        keyed.append(((m.group(2), int(m.group(1)), int(m.group(3))), wav))
    for (speaker, digit, index), wav in sorted(keyed):
        num_samples, sample_rate = audio_info(wav)
        utts.append(Utterance(id=f"fsdd_{digit}_{speaker}_{index}", audio=str(wav.resolve()),
                              text=DIGIT_WORDS[digit], duration=round(num_samples / sample_rate, 4),
                              speaker=f"fsdd_{speaker}", language="en", extra={"sample_rate": sample_rate}))
    return utts


def _load(data_dir: Path) -> list[Utterance]:
    if (data_dir / "manifest.jsonl").is_file():
        utts = read_manifest(data_dir / "manifest.jsonl")
    else:
        recordings = _find_recordings(data_dir)
        if recordings is None:
            raise ManifestError(f"{data_dir}: neither manifest.jsonl nor a recordings/ folder of FSDD wavs")
        utts = _from_recordings(recordings)
    if not utts:
        raise ManifestError(f"{data_dir}: no utterances found")
    return utts


def fsdd_speakers(data_dir: str | Path) -> list[str]:
    """The speaker ids of an FSDD copy (either layout), sorted: e.g. for leave-one-speaker-out folds."""
    return sorted({u.speaker for u in _load(Path(data_dir))})


def _resolve_speakers(names: tuple[str, ...], speakers: list[str], what: str) -> set[str]:
    """Map user names ('theo' or 'fsdd_theo') onto manifest speaker ids."""
    out = set()
    for name in names:
        match = [s for s in speakers if s == name or s == f"fsdd_{name}"]
        if not match:
            raise ConfigError(f"{what}: unknown speaker {name!r} (speakers: {', '.join(speakers)})")
        out.add(match[0])
    return out


def prepare_fsdd(data_dir: str | Path, out_dir: str | Path, test_speakers: tuple[str, ...] | None = None,
                 dev_speakers: tuple[str, ...] | None = None,
                 extra_train: tuple[str | Path, ...] = ()) -> dict[str, Path]:
    """Write speaker-disjoint ``out_dir/{train,dev,test}.jsonl`` manifests for FSDD.

    Args:
        data_dir: a folder with ``manifest.jsonl`` or the upstream layout (``recordings/`` here or one level down).
        out_dir: where the manifests go.
        test_speakers: speakers held out for test (``theo`` or ``fsdd_theo``); default the alphabetically last.
        dev_speakers: speakers held out for dev; default none: dev is every 10th utterance of the training speakers.
        extra_train: manifests appended to train (e.g. synthetic digits from
            :func:`speechseq.data.synthetic.make_word_set`); their speakers must not be FSDD speakers.

    Returns:
        ``{"train": out_dir/train.jsonl, "dev": ..., "test": ...}``.

    Raises:
        ManifestError: no manifest.jsonl nor recordings/ in data_dir, or a badly named recording.
        ConfigError: unknown or overlapping held-out speakers, or too few speakers for three splits.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    utts = _load(data_dir)
    speakers = sorted({u.speaker for u in utts})
    if test_speakers is None:
        test = {speakers[-1]}
    else:
        test = _resolve_speakers(tuple(test_speakers), speakers, "test_speakers")
    dev = set() if dev_speakers is None else _resolve_speakers(tuple(dev_speakers), speakers, "dev_speakers")
    if test & dev:
        raise ConfigError(f"speakers {sorted(test & dev)} are in both test_speakers and dev_speakers")
    if not test or not set(speakers) - test - dev:
        raise ConfigError(f"{data_dir}: speakers {speakers} cannot give non-empty train, dev "
                          f"({sorted(dev)}) and test ({sorted(test)}) splits")
    splits: dict[str, list[Utterance]] = {"train": [], "dev": [], "test": []}
    train_count = 0
    for u in utts:
        if u.speaker in test:
            split = "test"
        elif u.speaker in dev:
            split = "dev"
        else:
            split = "dev" if dev_speakers is None and train_count % 10 == 9 else "train"
            train_count += 1
        splits[split].append(u if u.language else dataclasses.replace(u, language="en"))
    for path in extra_train:
        extra = read_manifest(path)
        clash = sorted({u.speaker for u in extra} & set(speakers))
        if clash:
            raise ConfigError(f"{path}: speakers {clash} are FSDD speakers; extra training data must be other voices")
        splits["train"] += extra
    manifests = {}
    for split, items in splits.items():
        manifests[split] = out_dir / f"{split}.jsonl"
        write_manifest(manifests[split], items, relative=False)
    return manifests


def download_fsdd(dest: str | Path, url: str = FSDD_URL) -> Path:
    """Download and unpack the FSDD release zip into ``dest`` (skipped when already unpacked).

    Args:
        dest: download folder; the zip is unpacked here.
        url: archive URL (any scheme urllib reads, ``file://`` included).

    Returns:
        The unpacked folder that holds ``recordings/`` (pass it to :func:`prepare_fsdd`).

    Raises:
        SpeechseqError: download failure, or an archive without a ``recordings/`` folder.
    """
    dest = Path(dest)
    done = dest / ".complete"
    if done.is_file():
        root = dest / done.read_text().strip()
        if (root / "recordings").is_dir():
            return root
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / Path(urllib.request.url2pathname(url.rsplit("/", 1)[-1]) or "fsdd.zip").name
    if not archive.is_file():
        tmp = archive.with_name(archive.name + ".part")
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as f:
                shutil.copyfileobj(response, f)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise SpeechseqError(f"{url}: download failed ({e})") from None
        tmp.replace(archive)
    try:
        with zipfile.ZipFile(archive) as zf, tempfile.TemporaryDirectory(dir=dest) as tmp_dir:
            zf.extractall(tmp_dir)  # zipfile drops absolute paths and '..' parts
            recordings = _find_recordings(Path(tmp_dir))
            if recordings is None:
                raise SpeechseqError(f"{archive}: no recordings/ folder in the archive")
            top = recordings.parent
            root = dest / (top.name if top != Path(tmp_dir) else "fsdd")
            if root.exists():
                shutil.rmtree(root)
            if top == Path(tmp_dir):
                shutil.copytree(top, root)
            else:
                top.replace(root)
    except zipfile.BadZipFile:
        raise SpeechseqError(f"{archive}: not a zip file (delete it and download again)") from None
    done.write_text(root.name + "\n")
    return root
