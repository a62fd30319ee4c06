"""Synthesize a multi-voice English ASR corpus with the installed TTS engines (espeak-ng, flite, festival).

This is the project's embedded default corpus (``egs/synth_en``): it needs no download, only the apt packages
``espeak-ng``, ``flite`` and ``festival`` (+ ``festvox-kallpc16k``, ``festvox-us-slt-hts``).

    cfg = scale_config("tiny")
    manifests = make_corpus("data/synth_en", cfg, num_jobs=2)   # {"train": Path(...), "dev": ..., "test": ...}

Held-out design: the dev and test voices never occur in train (:func:`split_voices`), and the dev/test sentences are
never exact duplicates of train sentences. Sentences come from a small built-in grammar (:func:`generate_sentences`:
device commands, digit strings, times, colours/objects/places, shopping lists, short questions; 248 words) or from
a text file (:func:`load_text_sentences`).

Layout written by :func:`make_corpus`::

    out_dir/wav/{train,dev,test}/<id>.wav     16-bit mono wav at cfg.sample_rate
    out_dir/{train,dev,test}.jsonl            id, audio (relative), text, duration (s), speaker (= voice id), language

Utterance ids are ``<voice id>-<split>-<index:06d>-<sha1(text)[:6]>``, so re-running with the same config and seed
finds the wavs already written and skips them; a changed sentence gets a new id instead of reusing a stale wav.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import random
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from speechseq.audio.io import audio_info, load_audio, resample, save_audio
from speechseq.data.manifest import Utterance, write_manifest
from speechseq.errors import ConfigError, SpeechseqError
from speechseq.text.normalize import normalize_en, spell_int

Engine = Literal["espeak-ng", "flite", "festival"]
SPLITS = ("train", "dev", "test")

# espeak-ng accents used (only the built-in "gmw/" voices; the "mb/" ones need mbrola, rarely installed).
_ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029",
                   "en-us-nyc")
# Variants that sound like a plain human speaker (whisper, croak, robots and the like are left out).
_ESPEAK_VARIANTS = ("m1", "f1", "m2", "f2", "m3", "f3", "m4", "f4", "m5", "f5", "m6", "m7", "klatt", "klatt2",
                    "klatt3", "steph", "Andy", "linda", "david", "Annie", "max", "edward", "paul", "quincy")
_ESPEAK_SPEEDS_WPM = (150, 165, 180, 195)
_ESPEAK_PITCHES = (35, 45, 55, 65)
_NUM_ESPEAK_VOICES = 30
# flite: awb_time is a limited-domain (clock times only) voice and kal (8 kHz) duplicates kal16.
_FLITE_VOICES = ("kal16", "awb", "rms", "slt")
_FESTIVAL_VOICES = ("kal_diphone", "cmu_us_slt_arctic_hts")
_SPEAKER_OF = {"kal": "kal", "kal16": "kal", "kal_diphone": "kal", "slt": "slt", "cmu_us_slt_arctic_hts": "slt",
               "awb": "awb", "awb_time": "awb", "rms": "rms"}
# (speed_wpm, pitch) variants each flite/festival *train* voice is also rendered with (see train_variants): there
# are only a few such voices but they are the closest to natural speech, so prosody variants (F0 into the female
# range, slower and faster speech) give them a larger and more varied share of the training data. festival takes
# speed only (its voices ignore a pitch target).
_FLITE_TRAIN_VARIANTS = ((None, None), (160, 140), (190, 185), (150, 225))
_FESTIVAL_TRAIN_VARIANTS = ((None, None), (150, None), (200, None))
_FESTIVAL_BATCH = 20  # utterances per festival process (its start-up dominates otherwise)
_TRIM_MARGIN_S = 0.1
_TRIM_THRESHOLD_DB = -40.0


class SynthesisError(SpeechseqError):
    """A TTS engine failed, is not installed, or produced silence (the message names engine, voice and text)."""


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker.

    Attributes:
        engine: which TTS program renders it.
        name: engine voice name: ``en-us+m3`` (espeak-ng accent+variant), ``slt`` (flite ``-voice``),
            ``kal_diphone`` (festival ``(voice_kal_diphone)``).
        speed_wpm: speaking rate in words per minute (espeak-ng ``-s``; flite/festival as a duration stretch of
            175/speed_wpm); None = engine default.
        pitch: espeak-ng base pitch 0-99 (``-p``) or flite mean F0 in Hz; None = engine default. Not supported by
            festival.
    """

    engine: Engine
    name: str
    speed_wpm: int | None = None
    pitch: int | None = None

    @property
    def id(self) -> str:
        """Stable, file-name safe identifier, e.g. ``espeak-en-gb-scotland-m1-s165-p45`` or ``flite-slt``."""
        short = {"espeak-ng": "espeak", "flite": "flite", "festival": "festival"}[self.engine]
        parts = [short, re.sub(r"[^A-Za-z0-9_]+", "-", self.name).strip("-")]
        if self.speed_wpm is not None:
            parts.append(f"s{self.speed_wpm}")
        if self.pitch is not None:
            parts.append(f"p{self.pitch}")
        return "-".join(parts)

    @property
    def speaker(self) -> str:
        """The speaker behind the voice: voices sharing it are never split between train and dev/test.

        flite ``kal16`` and festival ``kal_diphone`` are both Kal, flite ``slt`` and festival
        ``cmu_us_slt_arctic_hts`` both SLT; espeak-ng voices with the same variant (``+m3``) count as one speaker.
        """
        if self.engine == "espeak-ng":
            accent, _, variant = self.name.partition("+")
            return "espeak-" + (variant or accent)
        return _SPEAKER_OF.get(self.name, f"{self.engine}-{self.name}")


# ----------------------------------------------------------------------------------------------------------------
# Voice discovery and splitting


def _run_quiet(cmd: list[str]) -> str:
    """stdout of ``cmd``, "" when it cannot run (for probing what is installed; failures mean "nothing")."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout


@functools.lru_cache(maxsize=None)
def _installed(engine: Engine) -> frozenset[str]:
    """Names the engine reports as installed (espeak-ng: languages and ``+variant`` names). Cached per process."""
    if shutil.which({"espeak-ng": "espeak-ng", "flite": "flite", "festival": "festival"}[engine]) is None:
        return frozenset()
    if engine == "espeak-ng":
        names: set[str] = set()
        for line in _run_quiet(["espeak-ng", "--voices=en"]).splitlines()[1:]:
            cols = line.split()
            if len(cols) >= 5 and cols[4].startswith("gmw/"):
                names.add(cols[1])
        for line in _run_quiet(["espeak-ng", "--voices=variant"]).splitlines()[1:]:
            cols = line.split()
            if len(cols) >= 5 and cols[4].startswith("!v/"):
                names.add("+" + cols[4][3:])
        return frozenset(names)
    if engine == "flite":
        text = _run_quiet(["flite", "-lv"])
        return frozenset(text.split(":", 1)[1].split()) if ":" in text else frozenset()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "list.scm"
        script.write_text("(print (voice.list))\n")
        text = _run_quiet(["festival", "-b", str(script)])
    return frozenset(re.findall(r"[A-Za-z0-9_]+", text))


def available_voices() -> list[Voice]:
    """Discover the English voices installed here, in a deterministic order.

    espeak-ng: up to 30 (accent, variant) pairs over the built-in English accents (en-us, en-gb, en-gb-scotland,
    en-gb-x-rp, en-gb-x-gbclan, en-gb-x-gbcwmd, en-029, en-us-nyc) and human-sounding variants (m1-m7, f1-f5,
    klatt*, ...), each at one of 4 speeds (150-195 wpm) and 4 pitches. flite: kal16, awb, rms, slt. festival:
    kal_diphone, cmu_us_slt_arctic_hts. With everything installed that is 36 voices; missing engines are skipped.

    Returns:
        Voices ordered espeak-ng, flite, festival.
    """
    voices: list[Voice] = []
    espeak = _installed("espeak-ng")
    accents = [a for a in _ESPEAK_ACCENTS if a in espeak]
    variants = [v for v in _ESPEAK_VARIANTS if "+" + v in espeak]
    for k, (accent, variant) in enumerate(_espeak_pairs(accents, variants, _NUM_ESPEAK_VOICES)):
        speed = _ESPEAK_SPEEDS_WPM[k % len(_ESPEAK_SPEEDS_WPM)]
        pitch = _ESPEAK_PITCHES[(k + k // len(_ESPEAK_SPEEDS_WPM)) % len(_ESPEAK_PITCHES)]
        voices.append(Voice("espeak-ng", f"{accent}+{variant}", speed, pitch))
    voices += [Voice("flite", v) for v in _FLITE_VOICES if v in _installed("flite")]
    voices += [Voice("festival", v) for v in _FESTIVAL_VOICES if v in _installed("festival")]
    return voices


def _espeak_pairs(accents: list[str], variants: list[str], count: int) -> list[tuple[str, str]]:
    """The first ``count`` distinct (accent, variant) pairs, spread so that consecutive pairs keep changing.

    Walk i walks accents fastest and shifts the variant once per accent cycle: ``(i % A, (i + i // A) % V)``. It
    repeats after A * V steps and reaches only ``A * V / gcd(A + 1, V)`` pairs, so the pairs it misses follow from
    walk j, ``(j % A, (j // A + j % A) % V)``, which reaches all A * V. Walk i alone gave the 30 voices of a full
    install (8 accents x 24 variants), and keeping it first keeps those voices, and so the corpora built from them.
    """
    num_a, num_v = len(accents), len(variants)
    walk_i = ((i % num_a, (i + i // num_a) % num_v) for i in range(num_a * num_v))
    walk_j = ((j % num_a, (j // num_a + j % num_a) % num_v) for j in range(num_a * num_v))
    distinct = dict.fromkeys(itertools.chain(walk_i, walk_j))  # insertion-ordered set
    return [(accents[a], variants[v]) for a, v in itertools.islice(distinct, count)]


def split_voices(voices: list[Voice], num_dev: int, num_test: int,
                 seed: int = 0) -> tuple[list[Voice], list[Voice], list[Voice]]:
    """Split voices into train/dev/test so that no underlying speaker (:attr:`Voice.speaker`) crosses splits.

    Test is filled first, then dev. A held-out split of 2+ voices first takes, for the non-espeak engines it still
    lacks (flite, festival), the speaker group covering most of them (e.g. ``slt`` = flite slt + festival
    cmu_us_slt_arctic_hts), provided train keeps at least one voice of every engine and one slot is left for
    espeak-ng; the rest are espeak-ng voices drawn at random (single-voice speakers first). Voices of a speaker that
    has a held-out voice are not used for train. With the default install (30 espeak-ng, 4 flite, 2 festival) and
    3+ test / 2+ dev voices this gives: test = the slt or kal pair (1 flite + 1 festival) + espeak-ng, dev = flite
    awb or rms + espeak-ng, train = the other kal/slt pair, the other flite voice and the other espeak-ng voices.

    Args:
        voices: candidates, e.g. :func:`available_voices`.
        num_dev: number of dev voices.
        num_test: number of test voices.
        seed: random seed of the draw.

    Returns:
        (train, dev, test) voice lists, each in the input order.

    Raises:
        ConfigError: if the voices cannot give num_dev + num_test held-out voices and a non-empty train set.
    """
    if num_dev < 0 or num_test < 0:
        raise ConfigError(f"split_voices: num_dev={num_dev} and num_test={num_test} must be >= 0")
    if len(set(voices)) != len(voices):
        raise ConfigError("split_voices: duplicate voices in the input")
    rng = random.Random(seed)
    shuffled = list(voices)
    rng.shuffle(shuffled)
    groups: dict[str, list[Voice]] = {}
    for v in shuffled:
        groups.setdefault(v.speaker, []).append(v)
    free = list(groups)  # speakers not yet held out, in shuffled order
    held: dict[str, list[Voice]] = {"test": [], "dev": []}
    for split, count in (("test", num_test), ("dev", num_dev)):
        chosen = held[split]
        while count >= 2:
            missing = {"flite", "festival"} - {v.engine for v in chosen}
            train_engines = {v.engine for s in free for v in groups[s]}
            best, best_cover = None, 0
            for spk in free:
                engines = {v.engine for v in groups[spk]}
                left = {v.engine for s in free if s != spk for v in groups[s]}
                cover = len(engines & missing)
                if "espeak-ng" in engines or len(groups[spk]) > count - len(chosen) - 1 or left != train_engines:
                    continue
                if cover > best_cover:
                    best, best_cover = spk, cover
            if best is None:
                break
            chosen += groups[best]
            free.remove(best)
        candidates = sorted(free, key=lambda s: (groups[s][0].engine != "espeak-ng", len(groups[s])))
        for spk in candidates[: count - len(chosen)]:
            chosen.append(groups[spk][0])
            free.remove(spk)
        if len(chosen) < count:
            raise ConfigError(f"split_voices: {len(voices)} voices ({len(groups)} speakers) cannot give {num_test} "
                              f"test + {num_dev} dev voices with distinct speakers and a train voice left")
    train = [v for s in free for v in groups[s]]
    if not train:
        raise ConfigError(f"split_voices: no voice left for train after {num_test} test + {num_dev} dev voices")
    order = {v: i for i, v in enumerate(voices)}

    def ordered(vs: list[Voice]) -> list[Voice]:
        return sorted(vs, key=order.__getitem__)

    return ordered(train), ordered(held["dev"]), ordered(held["test"])


def train_variants(voices: list[Voice]) -> list[Voice]:
    """Expand the flite and festival voices of a train split into prosody variants (speed, F0); espeak-ng voices
    are kept as they are (they already come in many accent/variant/speed/pitch combinations).

    Only ever applied to train voices after :func:`split_voices`, so held-out voices keep their engine defaults and
    no variant of a held-out speaker reaches train.
    """
    out: list[Voice] = []
    for v in voices:
        table = {"flite": _FLITE_TRAIN_VARIANTS, "festival": _FESTIVAL_TRAIN_VARIANTS}.get(v.engine)
        if table is None or v.speed_wpm is not None or v.pitch is not None:
            out.append(v)
            continue
        out += [Voice(v.engine, v.name, speed, pitch) for speed, pitch in table]
    return out


# Ranges :func:`random_prosody_variants` draws from: speaking rate (wpm) for every engine, and pitch (espeak-ng base
# pitch 0-99, flite mean F0 in Hz; festival takes none). They span slow to fast speech and male to female F0.
_VARIANT_SPEED_WPM = (120, 220)
_VARIANT_PITCH = {"espeak-ng": (15, 85), "flite": (80, 240)}


def random_prosody_variants(voices: list[Voice], count: int, seed: int = 0) -> list[Voice]:
    """``count`` extra renditions of every voice, each at a random speaking rate and (espeak-ng, flite) pitch drawn
    from the ranges above; deterministic for a seed, never a duplicate of an input voice or of each other. For
    isolated-word sets, where every voice says only a few words, this multiplies the acoustic variety cheaply.
    Only for voices that may be trained on (see :func:`train_variants`)."""
    rng = random.Random(seed)
    seen = {v.id for v in voices}
    out: list[Voice] = []
    for v in voices:
        made, tries = 0, 0
        while made < count and tries < 20 * count:
            tries += 1
            speed = rng.randint(*_VARIANT_SPEED_WPM)
            pitch_range = _VARIANT_PITCH.get(v.engine)
            variant = Voice(v.engine, v.name, speed, rng.randint(*pitch_range) if pitch_range else None)
            if variant.id not in seen:
                seen.add(variant.id)
                out.append(variant)
                made += 1
    return out


# ----------------------------------------------------------------------------------------------------------------
# Sentences

_DEVICES = ("lights lamp fan heater radio television oven kettle dishwasher speaker computer printer camera "
            "alarm").split()
_ROOMS = ["kitchen", "bedroom", "bathroom", "garage", "office", "hallway", "basement", "attic", "garden",
          "living room", "dining room"]
_COLORS = "red orange yellow green blue purple pink brown black white gray silver gold".split()
_OBJECTS = ("box ball cup book bag hat chair key pen bottle shoe plate spoon phone card coat umbrella basket "
            "towel").split()
_PLACES = "table shelf desk floor bed counter sofa drawer cabinet closet car".split()
_SIZES = "big small little large heavy old new".split()
_PREPS = ["on", "under", "behind", "next to", "near", "inside"]
_DAYS = "monday tuesday wednesday thursday friday saturday sunday today tomorrow tonight".split()
_CITIES = "london paris tokyo boston chicago sydney berlin madrid denver seattle".split()
_EVENTS = "meeting class movie game concert dinner train bus flight".split()
_TASKS = ["call mom", "water the plants", "feed the cat", "take my medicine", "buy milk", "walk the dog",
          "pay the rent", "check the mail"]
_ITEMS = "apples eggs bananas oranges lemons potatoes tomatoes onions carrots cookies".split()
_MUSIC = ["some music", "the news", "some jazz", "a podcast", "my playlist", "the radio"]
_DOORS = ["front door", "back door", "garage door", "window", "gate", "blinds", "curtains"]
_POLITE = ["", "please", "could you", "can you"]
_DIGITS = "zero one two three four five six seven eight nine".split()


def _number(rng: random.Random, low: int, high: int) -> str:
    return spell_int(rng.randint(low, high))


def _time(rng: random.Random) -> str:
    hour = spell_int(rng.randint(1, 12))
    kind = rng.randrange(6)
    if kind == 0:
        return f"{hour} {rng.choice(['fifteen', 'thirty', 'forty five', 'twenty', 'ten', 'fifty'])}"
    if kind == 1:
        return f"half past {hour}"
    if kind == 2:
        return f"a quarter {rng.choice(['to', 'past'])} {hour}"
    if kind == 3:
        return f"{hour} in the {rng.choice(['morning', 'afternoon', 'evening'])}"
    if kind == 4:
        return rng.choice(["noon", "midnight"])
    return f"{hour} sharp"


def _when(rng: random.Random) -> str:
    day = rng.choice(_DAYS)
    return day if day in ("today", "tomorrow", "tonight") else f"on {day}"


def _digits(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(_DIGITS) for _ in range(rng.randint(low, high)))


def _sentence(rng: random.Random) -> str:
    """One sentence of the grammar (may be outside 3-10 words; the caller filters)."""
    c = rng.choice
    kind = rng.randrange(20)
    if kind == 0:
        return f"{c(_POLITE)} turn {c(['on', 'off'])} the {c(_DEVICES)} in the {c(_ROOMS)}"
    if kind == 1:
        return f"{c(_POLITE)} switch {c(['on', 'off'])} the {c(_DEVICES)} {c(['now', 'at ' + _time(rng)])}"
    if kind == 2:
        return f"set the {c(['thermostat', 'temperature', 'heater'])} to {_number(rng, 55, 85)} degrees"
    if kind == 3:
        return f"dim the lights in the {c(_ROOMS)} to {_number(rng, 5, 95)} percent"
    if kind == 4:
        return f"{c(_POLITE)} {c(['open', 'close', 'lock', 'unlock'])} the {c(_DOORS)} {c(['now', '', _when(rng)])}"
    if kind == 5:
        return f"play {c(_MUSIC)} in the {c(_ROOMS)} {c(['', 'please', 'at ' + _time(rng)])}"
    if kind == 6:
        return f"{c(['start', 'stop'])} the {c(_DEVICES)} in {_number(rng, 2, 59)} {c(['minutes', 'seconds'])}"
    if kind == 7:
        return f"{c(['call', 'dial', 'my number is', 'the code is', 'enter'])} {_digits(rng, 3, 7)}"
    if kind == 8:
        return _digits(rng, 3, 8)
    if kind == 9:
        return f"{c(['wake me up', 'set an alarm', 'remind me'])} at {_time(rng)} {c([_when(rng), ''])}"
    if kind == 10:
        return f"remind me to {c(_TASKS)} at {_time(rng)}"
    if kind == 11:
        return f"the {c(_EVENTS)} starts at {_time(rng)} {_when(rng)}"
    if kind == 12:
        return f"put the {c(_COLORS)} {c(_OBJECTS)} {c(_PREPS)} the {c(_PLACES)}"
    if kind == 13:
        return f"the {c(_SIZES)} {c(_COLORS)} {c(_OBJECTS)} is {c(_PREPS)} the {c(_PLACES)}"
    if kind == 14:
        return f"bring me the {c(_COLORS)} {c(_OBJECTS)} from the {c(_ROOMS)}"
    if kind == 15:
        return f"add {_number(rng, 2, 20)} {c(_ITEMS)} to my shopping list"
    if kind == 16:
        return f"where is {c(['the', 'my'])} {c(_COLORS + _SIZES)} {c(_OBJECTS)}"
    if kind == 17:
        return f"{c(['what time is it', 'is it cold', 'will it rain', 'is it sunny'])} in {c(_CITIES)} {_when(rng)}"
    if kind == 18:
        return f"is the {c(_DEVICES)} in the {c(_ROOMS)} {c(['on', 'off', 'still on'])}"
    return f"how {c(['long does it take', 'far is it'])} to {c(_CITIES)} by {c(['train', 'bus', 'car', 'plane'])}"


def generate_sentences(n: int, seed: int = 0) -> list[str]:
    """``n`` sentences from the built-in grammar: lower-case words only, 3-10 words each, deterministic for ``seed``.

    Sentences are distinct as long as the grammar allows (it has far more than 10^6 sentences); only when 50 * n
    draws do not give n distinct ones are duplicates let through.

    Args:
        n: number of sentences.
        seed: random seed.

    Returns:
        List of ``n`` sentences.
    """
    rng = random.Random(seed)
    out: list[str] = []
    seen: set[str] = set()
    draws = 0
    while len(out) < n:
        draws += 1
        sentence = " ".join(_sentence(rng).split())
        if not 3 <= len(sentence.split()) <= 10:
            continue
        if sentence in seen and draws < 50 * n:
            continue
        seen.add(sentence)
        out.append(sentence)
    return out


def grammar_vocabulary() -> list[str]:
    """Sorted list of every word the built-in grammar can produce (for docs and tests)."""
    words: set[str] = set()
    for group in (_DEVICES, _ROOMS, _COLORS, _OBJECTS, _PLACES, _SIZES, _PREPS, _DAYS, _CITIES, _EVENTS, _TASKS,
                  _ITEMS, _MUSIC, _DOORS, _POLITE, _DIGITS):
        for phrase in group:
            words.update(phrase.split())
    words.update(spell_int(i) for i in range(100) if " " not in spell_int(i))
    rng = random.Random(0)
    for _ in range(20000):
        words.update(_sentence(rng).split())
    return sorted(words)


def load_text_sentences(path: str | Path, max_words: int = 20, min_words: int = 1) -> list[str]:
    """Distinct sentences of a text file, one per line, normalised with ``normalize_en`` (digits spelled out).

    Lines outside ``[min_words, max_words]`` words after normalisation are dropped, as are repeats. The order of
    the file is kept (shuffling is up to the caller).

    Raises:
        SpeechseqError: when the file is missing or no line passes the filters.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise SpeechseqError(f"{path}: cannot read sentence file ({e.strerror})") from None
    out: list[str] = []
    seen: set[str] = set()
    for line in lines:
        sentence = normalize_en(line)
        if sentence and min_words <= len(sentence.split()) <= max_words and sentence not in seen:
            seen.add(sentence)
            out.append(sentence)
    if not out:
        raise SpeechseqError(f"{path}: no sentence with {min_words}-{max_words} words")
    return out


def split_sentences(sentences: list[str], num_train: int, num_dev: int, num_test: int,
                    seed: int = 0) -> tuple[list[str], list[str], list[str]]:
    """Deterministically draw train/dev/test sentence lists; dev and test share no sentence with train or each other.

    The distinct sentences are shuffled with ``seed``; dev and test take the first ``num_dev + num_test`` and train
    cycles through the rest (re-shuffled every pass), so train may repeat sentences only when the pool is short.

    Raises:
        ConfigError: if the pool has fewer than num_dev + num_test + 1 distinct sentences.
    """
    pool = list(dict.fromkeys(sentences))
    if len(pool) < num_dev + num_test + (1 if num_train else 0):
        raise ConfigError(f"need at least {num_dev + num_test + 1} distinct sentences for {num_dev} dev + "
                          f"{num_test} test + train, got {len(pool)}")
    rng = random.Random(seed)
    rng.shuffle(pool)
    dev, test, rest = pool[:num_dev], pool[num_dev:num_dev + num_test], pool[num_dev + num_test:]
    train: list[str] = []
    while len(train) < num_train:
        train += rest[: num_train - len(train)]
        rng.shuffle(rest)
    return train, dev, test


# ----------------------------------------------------------------------------------------------------------------
# Synthesis


def _check_voice(voice: Voice) -> None:
    names = _installed(voice.engine)
    if voice.engine == "espeak-ng":
        accent, _, variant = voice.name.partition("+")
        ok = accent in names and (not variant or "+" + variant in names)
    else:
        ok = voice.name in names
    if not ok:
        raise SynthesisError(f"{voice.engine}: voice {voice.name!r} is not installed (voice id {voice.id})")
    if voice.engine == "festival" and voice.pitch is not None:
        raise SynthesisError(f"festival voice {voice.name!r}: pitch is not supported (voice id {voice.id})")


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _engine_commands(voice: Voice, texts: list[str], tmp: Path) -> list[tuple[list[str], str | None]]:
    """(argv, stdin) per engine process; they write ``tmp/<i>.wav`` for ``texts[i]``."""
    if voice.engine == "espeak-ng":
        opts = ["-v", voice.name]
        opts += ["-s", str(voice.speed_wpm)] if voice.speed_wpm else []
        opts += ["-p", str(voice.pitch)] if voice.pitch is not None else []
        return [(["espeak-ng", *opts, "-w", str(tmp / f"{i}.wav")], t) for i, t in enumerate(texts)]
    if voice.engine == "flite":
        opts = ["-voice", voice.name]
        opts += ["--setf", f"duration_stretch={175 / voice.speed_wpm:.3f}"] if voice.speed_wpm else []
        opts += ["--setf", f"int_f0_target_mean={voice.pitch}"] if voice.pitch is not None else []
        return [(["flite", *opts, "-t", t, "-o", str(tmp / f"{i}.wav")], None) for i, t in enumerate(texts)]
    lines = [f"(voice_{voice.name})"]
    if voice.speed_wpm:
        lines.append(f"(Parameter.set 'Duration_Stretch {175 / voice.speed_wpm:.3f})")
    for i, t in enumerate(texts):
        out = _scheme_string(str(tmp / f"{i}.wav"))
        lines.append(f"(utt.save.wave (utt.synth (Utterance Text {_scheme_string(t)})) {out} 'riff)")
    script = tmp / "synth.scm"
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [(["festival", "-b", str(script)], None)]


def trim_silence(wave: np.ndarray, sample_rate: int, margin_s: float = _TRIM_MARGIN_S,
                 threshold_db: float = _TRIM_THRESHOLD_DB) -> np.ndarray:
    """Cut leading/trailing silence, keeping ``margin_s`` of it on each side (where the input has that much).

    Args:
        wave: (N,) float mono samples.
        sample_rate: Hz.
        margin_s: silence kept before the first and after the last active 10 ms frame, seconds.
        threshold_db: a frame is active if its RMS is within this many dB of the loudest frame's.

    Returns:
        (M,) trimmed view of ``wave``; all of it if no frame is active.
    """
    hop = max(1, sample_rate // 100)
    num_frames = len(wave) // hop
    if num_frames == 0:
        return wave
    rms = np.sqrt(np.mean(np.square(wave[: num_frames * hop].reshape(num_frames, hop), dtype=np.float64), axis=1))
    peak = float(rms.max())
    if peak <= 0.0:
        return wave
    active = np.flatnonzero(rms >= peak * 10.0 ** (threshold_db / 20.0))
    margin = int(round(margin_s * sample_rate))
    start = max(0, int(active[0]) * hop - margin)
    end = min(len(wave), (int(active[-1]) + 1) * hop + margin)
    return wave[start:end]


def _postprocess(raw: Path, path: Path, sample_rate: int, where: str) -> float:
    if not raw.exists() or raw.stat().st_size <= 44:
        raise SynthesisError(f"{where}: the engine wrote no audio")
    wave, sr = load_audio(raw)
    if wave.size == 0 or not np.any(np.abs(wave) > 1e-4):
        raise SynthesisError(f"{where}: the engine produced silence")
    wave = trim_silence(wave, sr)
    if sr != sample_rate:
        wave = resample(wave, sr, sample_rate)
    peak = float(np.max(np.abs(wave)))
    if peak > 0.95:  # resampling can overshoot full scale; never amplify otherwise
        wave = wave * (0.95 / peak)
    save_audio(path, wave.astype(np.float32), sample_rate)
    return len(wave) / sample_rate


def synthesize_many(texts: list[str], voice: Voice, paths: list[str | Path],
                    sample_rate: int = 16000) -> list[float]:
    """Render several texts with one voice (festival runs them in a single process). See :func:`synthesize`."""
    if len(texts) != len(paths):
        raise ValueError(f"synthesize_many: {len(texts)} texts but {len(paths)} paths")
    _check_voice(voice)
    durations: list[float] = []
    with tempfile.TemporaryDirectory(prefix="speechseq_tts_") as tmp_name:
        tmp = Path(tmp_name)
        for argv, stdin in _engine_commands(voice, texts, tmp):
            try:
                proc = subprocess.run(argv, input=stdin, capture_output=True, text=True,
                                      timeout=60 + 10 * len(texts))
            except (OSError, subprocess.TimeoutExpired) as e:
                raise SynthesisError(f"{voice.engine} voice {voice.name!r} on {texts[0]!r}: {e}") from None
            if proc.returncode != 0:
                raise SynthesisError(f"{voice.engine} voice {voice.name!r} on {texts[0]!r}"
                                     f"{' (+%d more)' % (len(texts) - 1) if len(texts) > 1 else ''}: exit "
                                     f"{proc.returncode}: {proc.stderr.strip()[-300:]}")
        for i, (text, path) in enumerate(zip(texts, paths)):
            where = f"{voice.engine} voice {voice.name!r} on {text!r}"
            durations.append(_postprocess(tmp / f"{i}.wav", Path(path), sample_rate, where))
    return durations


def synthesize(text: str, voice: Voice, path: str | Path, sample_rate: int = 16000) -> float:
    """Render ``text`` with ``voice`` into a 16-bit mono wav at ``path``.

    The engine writes a temporary wav; leading/trailing silence is trimmed to 100 ms, the audio is resampled to
    ``sample_rate`` and written atomically with ``save_audio``.

    Args:
        text: words to speak.
        voice: engine and voice settings.
        path: output wav path (parent folders are created).
        sample_rate: output rate, Hz.

    Returns:
        Duration of the written audio, seconds.

    Raises:
        SynthesisError: engine or voice not installed, engine failure, or silent output (names engine, voice, text).
    """
    return synthesize_many([text], voice, [path], sample_rate)[0]


# ----------------------------------------------------------------------------------------------------------------
# Corpus


@dataclass(frozen=True)
class SynthCorpusConfig:
    """Size and voices of a synthetic corpus.

    Attributes:
        num_train / num_dev / num_test: utterances per split.
        num_dev_voices / num_test_voices: held-out voices per split (never used in train).
        sample_rate: output audio rate, Hz.
        max_words: longest sentence kept from a text file, words.
        engines: engines to draw voices from.
        voices: if non-empty, only the voices with these ids (see :attr:`Voice.id`) are used.
        train_variants: also render the flite/festival train voices with prosody variants
            (:func:`train_variants`).
    """

    num_train: int = 1500
    num_dev: int = 100
    num_test: int = 100
    num_dev_voices: int = 3
    num_test_voices: int = 4
    sample_rate: int = 16000
    max_words: int = 20
    engines: tuple[str, ...] = ("espeak-ng", "flite", "festival")
    voices: tuple[str, ...] = ()
    train_variants: bool = True


def scale_config(scale: str) -> SynthCorpusConfig:
    """Preset sizes: ``tiny`` (4000/100/100 utterances, ~2.4 h of audio, the Quickstart), ``small`` (10k/300/300,
    ~6 h) and ``full`` (60k/1000/1000, ~35 h); durations are for the built-in grammar (~2 s per utterance).

    Raises:
        ConfigError: unknown scale name (the message lists the choices).
    """
    presets = {
        "tiny": SynthCorpusConfig(num_train=4000, num_dev=100, num_test=100, num_dev_voices=3, num_test_voices=4),
        "small": SynthCorpusConfig(num_train=10000, num_dev=300, num_test=300, num_dev_voices=4, num_test_voices=5),
        "full": SynthCorpusConfig(num_train=60000, num_dev=1000, num_test=1000, num_dev_voices=5,
                                  num_test_voices=6),
    }
    if scale not in presets:
        raise ConfigError(f"unknown scale {scale!r} (choices: {', '.join(presets)})")
    return presets[scale]


def _select_voices(cfg: SynthCorpusConfig) -> list[Voice]:
    voices = [v for v in available_voices() if v.engine in cfg.engines]
    if cfg.voices:
        by_id = {v.id: v for v in voices}
        missing = [i for i in cfg.voices if i not in by_id]
        if missing:
            raise ConfigError(f"voices: {missing} not available here (available: {', '.join(by_id)})")
        voices = [by_id[i] for i in cfg.voices]
    if not voices:
        raise SynthesisError(f"no voice of engines {list(cfg.engines)} is installed (apt install espeak-ng flite "
                             "festival festvox-kallpc16k festvox-us-slt-hts)")
    return voices


PlanItem = tuple[str, str, Voice, Path]  # (utterance id, text, voice, wav path)


def _synthesize_plan(plan: list[PlanItem], sample_rate: int, num_jobs: int) -> dict[str, float]:
    """Synthesize the wavs of ``plan`` that do not exist yet (``num_jobs`` engine processes at a time); returns every
    utterance's duration in seconds (read from the file for wavs already there)."""
    durations: dict[str, float] = {}
    todo: dict[Voice, list[tuple[str, str, Path]]] = {}
    maker: dict[Path, str] = {}  # wav path -> the utterance that makes it (a repeated word shares one wav)
    for uid, text, voice, path in plan:
        if path in maker:
            continue
        maker[path] = uid
        if path.exists():
            num_samples, sr = audio_info(path)
            durations[uid] = num_samples / sr
        else:
            todo.setdefault(voice, []).append((uid, text, path))
    jobs: list[tuple[Voice, list[tuple[str, str, Path]]]] = []
    for voice, items in todo.items():
        size = _FESTIVAL_BATCH if voice.engine == "festival" else 1
        jobs += [(voice, items[k:k + size]) for k in range(0, len(items), size)]

    def run(job: tuple[Voice, list[tuple[str, str, Path]]]) -> list[tuple[str, float]]:
        voice, items = job
        secs = synthesize_many([t for _, t, _ in items], voice, [p for _, _, p in items], sample_rate)
        return [(uid, d) for (uid, _, _), d in zip(items, secs)]

    # festival batches first: they are the longest jobs, so they do not straggle at the end
    jobs.sort(key=lambda job: -len(job[1]))
    with ThreadPoolExecutor(max_workers=max(1, num_jobs)) as pool_exec, \
            tqdm(total=sum(len(items) for _, items in jobs), desc="synthesize", unit="utt") as bar:
        futures = [pool_exec.submit(run, job) for job in jobs]
        for future in as_completed(futures):
            done = future.result()
            durations.update(done)
            bar.update(len(done))
    return {uid: durations[maker[path]] for uid, _, _, path in plan}


def _text_key(text: str) -> str:
    """File-name key of a text (its sha1 prefix), so a cached wav is only ever reused for the same text."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]


def _plan_split(split: str, sentences: list[str], voices: list[Voice], wav_dir: Path,
                rng: random.Random) -> list[PlanItem]:
    """(id, text, voice, wav path) per utterance; voices are used round-robin in a shuffled order."""
    order = list(voices)
    plan = []
    for i, text in enumerate(sentences):
        if i % len(order) == 0:
            rng.shuffle(order)
        voice = order[i % len(order)]
        uid = f"{voice.id}-{split}-{i:06d}-{_text_key(text)[:6]}"
        plan.append((uid, text, voice, wav_dir / split / f"{uid}.wav"))
    return plan


def make_corpus(out_dir: str | Path, cfg: SynthCorpusConfig, text_file: str | None = None, num_jobs: int = 2,
                seed: int = 0) -> dict[str, Path]:
    """Synthesize a corpus and write its manifests (see the module docstring for the layout).

    Idempotent: wavs that already exist are not synthesized again (their duration is read from the file).

    Args:
        out_dir: output folder.
        cfg: sizes and voices, e.g. ``scale_config("tiny")``.
        text_file: sentences one per line instead of the built-in grammar (lines over cfg.max_words dropped).
        num_jobs: engine processes run in parallel.
        seed: seed of the sentence draw, the voice split and the voice assignment.

    Returns:
        ``{"train": out_dir/train.jsonl, "dev": ..., "test": ...}``.

    Raises:
        ConfigError: dev/test utterances without dev/test voices, unknown voice ids, too few voices or sentences.
    """
    for split, count, num_voices in (("dev", cfg.num_dev, cfg.num_dev_voices),
                                     ("test", cfg.num_test, cfg.num_test_voices)):
        if count > 0 and num_voices < 1:
            raise ConfigError(f"make_corpus: num_{split}={count} {split} utterances need a {split} voice, got "
                              f"num_{split}_voices={num_voices} (set num_{split}=0 for no {split} split)")
    out_dir = Path(out_dir).resolve()
    voices = _select_voices(cfg)
    train_v, dev_v, test_v = split_voices(voices, cfg.num_dev_voices, cfg.num_test_voices, seed)
    if cfg.train_variants:
        train_v = train_variants(train_v)
    total = cfg.num_train + cfg.num_dev + cfg.num_test
    if text_file is None:
        pool = generate_sentences(total, seed)
    else:
        pool = load_text_sentences(text_file, max_words=cfg.max_words)
    train_s, dev_s, test_s = split_sentences(pool, cfg.num_train, cfg.num_dev, cfg.num_test, seed)
    # one voice-assignment stream per split: the dev/test plans do not move when the train voices change
    plans = {split: _plan_split(split, sents, vs, out_dir / "wav", random.Random(f"{seed}-{split}"))
             for split, sents, vs in (("train", train_s, train_v), ("dev", dev_s, dev_v), ("test", test_s, test_v))}

    durations = _synthesize_plan([item for plan in plans.values() for item in plan], cfg.sample_rate, num_jobs)

    manifests: dict[str, Path] = {}
    for split, plan in plans.items():
        utts = [Utterance(id=uid, audio=str(path), text=text, duration=round(durations[uid], 4), speaker=voice.id,
                          language="en") for uid, text, voice, path in plan]
        manifests[split] = out_dir / f"{split}.jsonl"
        write_manifest(manifests[split], utts)
    return manifests


# ----------------------------------------------------------------------------------------------------------------
# Alignment reference set


def make_alignment_set(out_dir: str | Path, sentences: list[str], voice: Voice, gap_s: tuple[float, float] = (0.05, 0.3),
                       seed: int = 0, sample_rate: int = 16000) -> Path:
    """Utterances with known word boundaries, for measuring forced-alignment/timestamp error.

    Each word is synthesized alone (kept as ``words/<voice id>/<sha1(word)[:10]>.wav``, reused by later runs),
    trimmed to its active region (no margin), and the words are concatenated with random silent gaps drawn from
    ``gap_s`` (plus the same before the first and after the last word). The manifest
    ``out_dir/align.jsonl`` carries ``words: [[word, start_s, end_s], ...]`` per utterance.

    Args:
        out_dir: output folder (``wav/`` and ``align.jsonl``).
        sentences: texts (lower-case words).
        voice: the voice to speak every word.
        gap_s: (min, max) silence between words, seconds.
        seed: gap randomness.
        sample_rate: Hz.
    """
    out = Path(out_dir)
    rng = random.Random(seed)
    vocab = sorted({w for s in sentences for w in s.split()})
    paths = [out / "words" / voice.id / f"{_text_key(w)}.wav" for w in vocab]
    missing = [(w, p) for w, p in zip(vocab, paths) if not p.exists()]
    if missing:
        synthesize_many([w for w, _ in missing], voice, [p for _, p in missing], sample_rate)
    words = {w: trim_silence(load_audio(p, sample_rate)[0], sample_rate, margin_s=0.0) for w, p in zip(vocab, paths)}
    utts = []
    for i, sentence in enumerate(sentences):
        pieces, bounds, t = [], [], 0.0
        for w in sentence.split():
            gap = np.zeros(int(round(rng.uniform(*gap_s) * sample_rate)), dtype=np.float32)
            pieces += [gap, words[w]]
            t += len(gap) / sample_rate
            bounds.append([w, round(t, 4), round(t + len(words[w]) / sample_rate, 4)])
            t += len(words[w]) / sample_rate
        pieces.append(np.zeros(int(round(rng.uniform(*gap_s) * sample_rate)), dtype=np.float32))
        wave = np.concatenate(pieces)
        path = out / "wav" / f"align-{i:04d}.wav"
        save_audio(path, wave, sample_rate)
        utts.append(Utterance(id=f"align-{i:04d}", audio=str(path.resolve()), text=sentence,
                              duration=round(len(wave) / sample_rate, 4), speaker=voice.id, language="en",
                              extra={"words": bounds}))
    manifest = out / "align.jsonl"
    write_manifest(manifest, utts)
    return manifest


def _run_festival(script: Path, timeout_s: float, what: str) -> str:
    """stdout of ``festival -b script``; SynthesisError (with festival's stderr) on a timeout or a failed run."""
    argv = ["festival", "-b", str(script)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        stderr = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr or ""
        raise SynthesisError(f"{what}: timed out after {timeout_s:g} s: {stderr.strip()[-300:]}") from None
    except OSError as e:
        raise SynthesisError(f"{what}: cannot run festival ({e})") from None
    if proc.returncode != 0:
        raise SynthesisError(f"{what}: exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
    return proc.stdout


def make_connected_alignment_set(out_dir: str | Path, sentences: list[str], voice: Voice,
                                 sample_rate: int = 16000) -> Path:
    """Connected speech with the word boundaries festival itself reports, for measuring timestamp error.

    festival synthesizes each sentence whole (no trimming) and prints every word's ``word_start``/``word_end`` from
    its Word relation; a sentence whose festival words differ from its text (e.g. a token festival expands) is left
    out. Unlike :func:`make_alignment_set` the speech is coarticulated like a corpus utterance, so a model trained on
    connected speech is in its domain. The manifest ``out_dir/align.jsonl`` carries ``words: [[word, start_s,
    end_s], ...]``.

    Args:
        out_dir: output folder (``wav/`` and ``align.jsonl``).
        sentences: texts (lower-case words).
        voice: a festival voice.
        sample_rate: Hz.

    Raises:
        SynthesisError: not a festival voice, festival missing, failing or taking over 30 s + 10 s per sentence (the
            message carries festival's stderr), or no sentence usable.
    """
    if voice.engine != "festival":
        raise SynthesisError(f"make_connected_alignment_set needs a festival voice, got {voice.id}")
    _check_voice(voice)
    out = Path(out_dir)
    raw_dir = out / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"(voice_{voice.name})"]
    if voice.speed_wpm:
        lines.append(f"(Parameter.set 'Duration_Stretch {175 / voice.speed_wpm:.3f})")
    for i, text in enumerate(sentences):
        lines += [f"(set! u (utt.synth (Utterance Text {_scheme_string(text)})))",
                  f"(utt.save.wave u {_scheme_string(str(raw_dir / f'{i}.wav'))} 'riff)",
                  f'(format t "UTT {i}\\n")',
                  '(mapcar (lambda (w) (format t "W %s %f %f\\n" (item.name w) (item.feat w "word_start") '
                  '(item.feat w "word_end"))) (utt.relation.items u \'Word))']
    script = raw_dir / "align.scm"
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    printed = _run_festival(script, timeout_s=30 + 10 * len(sentences), what=f"festival {voice.name}")
    words: dict[int, list[list]] = {}
    current = -1
    for line in printed.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "UTT":
            current = int(parts[1])
            words[current] = []
        elif len(parts) == 4 and parts[0] == "W" and current >= 0:
            words[current].append([parts[1], round(float(parts[2]), 4), round(float(parts[3]), 4)])
    utts = []
    for i, text in enumerate(sentences):
        bounds = words.get(i, [])
        raw = raw_dir / f"{i}.wav"
        if [w[0] for w in bounds] != text.split() or not raw.exists():
            continue
        wave, sr = load_audio(raw)
        if sr != sample_rate:
            wave = resample(wave, sr, sample_rate)
        path = out / "wav" / f"connected-{i:04d}.wav"
        save_audio(path, wave.astype(np.float32), sample_rate)
        utts.append(Utterance(id=f"connected-{i:04d}", audio=str(path.resolve()), text=text,
                              duration=round(len(wave) / sample_rate, 4), speaker=voice.id, language="en",
                              extra={"words": bounds}))
    if not utts:
        raise SynthesisError(f"festival {voice.name}: no sentence gave word times matching its text")
    manifest = out / "align.jsonl"
    write_manifest(manifest, utts)
    return manifest


# ----------------------------------------------------------------------------------------------------------------
# Isolated words (e.g. digits to add voices to FSDD)


def make_word_set(out_dir: str | Path, words: list[str], voices: list[Voice] | None = None,
                  sample_rate: int = 8000, num_jobs: int = 2, name: str = "words", variants: int = 0,
                  seed: int = 0) -> Path:
    """Every word spoken alone by every voice: extra speakers for an isolated-word task such as FSDD digits.

    With the default voices (every installed voice plus the flite/festival prosody variants of
    :func:`train_variants`, 52 with everything installed) and the ten digits that is 520 utterances. The audio is
    written at ``sample_rate`` (8 kHz by default, FSDD's band), silence trimmed to 100 ms as in :func:`make_corpus`,
    to ``wav/<voice id>/<sha1(word)[:10]>.wav``; existing wavs are kept, so a re-run only reads durations (and a
    re-run with other words or voices never reuses a wav made for another word). Only use it where no voice here is
    a test speaker (FSDD's test speakers are real people).

    Args:
        out_dir: output folder (``wav/`` and ``<name>.jsonl``).
        words: texts to speak (one utterance per word and voice).
        voices: voices to use; default every installed voice with its variants.
        sample_rate: Hz of the written wavs.
        num_jobs: engine processes run in parallel.
        name: manifest file stem.
        variants: also speak every word with this many random prosody variants of each voice
            (:func:`random_prosody_variants`).
        seed: seed of those variants.

    Returns:
        The manifest path; speakers are the voice ids.
    """
    out = Path(out_dir).resolve()
    if voices is None:
        voices = train_variants(available_voices())
    if variants > 0:
        voices = voices + random_prosody_variants(voices, variants, seed)
    if not voices or not words:
        raise SynthesisError(f"make_word_set: no voices ({len(voices)}) or no words ({len(words)}) to synthesize")
    plan = [(f"{v.id}-{name}-{i:03d}-{w.replace(' ', '_')}", w, v, out / "wav" / v.id / f"{_text_key(w)}.wav")
            for v in voices for i, w in enumerate(words)]
    durations = _synthesize_plan(plan, sample_rate, num_jobs)
    utts = [Utterance(id=uid, audio=str(path), text=text, duration=round(durations[uid], 4), speaker=voice.id,
                      language="en") for uid, text, voice, path in plan]
    manifest = out / f"{name}.jsonl"
    write_manifest(manifest, utts)
    return manifest
