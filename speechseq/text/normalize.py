"""English text normalisation for ASR training and scoring.

``normalize_en("Dr. Smith paid $5, at 10:30!")`` -> ``"dr smith paid five dollars at ten thirty"``.
Lower-case, NFKC, digits spelled out (integers, decimals, ordinals like 21st, ``$`` amounts, ``%``, simple times),
punctuation removed except word-internal apostrophes, whitespace collapsed.

Why our own: the number speller is ~40 lines, and the usual libraries (num2words, nemo_text_processing) either
pull heavy dependencies or cover far more than scoring needs; what we need is a deterministic, dependency-free
normaliser that training and scoring share.
"""

from __future__ import annotations

import re
import unicodedata

_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen " \
        "seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = [(10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred")]
_ORDINAL = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth", "nine": "ninth",
            "twelve": "twelfth"}


def spell_int(n: int) -> str:
    """English words of a non-negative integer: 342 -> 'three hundred forty two'."""
    if n < 0:
        return "minus " + spell_int(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    for value, name in _SCALES:
        if n >= value:
            head, rest = divmod(n, value)
            return spell_int(head) + " " + name + ("" if rest == 0 else " " + spell_int(rest))
    raise AssertionError("unreachable")


def spell_ordinal(n: int) -> str:
    """21 -> 'twenty first'."""
    words = spell_int(n).split()
    last = words[-1]
    if last in _ORDINAL:
        words[-1] = _ORDINAL[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def _number(match: re.Match) -> str:
    text = match.group(0).replace(",", "")
    if "." in text:
        whole, frac = text.split(".", 1)
        return spell_int(int(whole or "0")) + " point " + " ".join(_ONES[int(d)] for d in frac)
    if len(text) > 1 and text.startswith("0"):
        return " ".join(_ONES[int(d)] for d in text)  # digit strings such as zip codes
    return spell_int(int(text))


def normalize_en(text: str) -> str:
    """Normalise English text for ASR (see module docstring)."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = text.replace("’", "'").replace("‘", "'")
    text = re.sub(r"\$(\d[\d,]*(?:\.\d+)?)", lambda m: m.group(1) + " dollars", text)
    text = re.sub(r"(\d)%", r"\1 percent", text)
    text = re.sub(r"\b(\d{1,2}):(\d{2})\b",
                  lambda m: spell_int(int(m.group(1))) + ("" if m.group(2) == "00" else " " + (
                      "oh " + _ONES[int(m.group(2))] if m.group(2).startswith("0") else spell_int(int(m.group(2))))),
                  text)
    text = re.sub(r"\b(\d+)(st|nd|rd|th)\b", lambda m: spell_ordinal(int(m.group(1))), text)
    text = re.sub(r"\d[\d,]*(?:\.\d+)?", lambda m: " " + _number(m) + " ", text)
    text = text.replace("&", " and ")
    text = re.sub(r"[^\w\s']", " ", text)  # punctuation to spaces
    text = re.sub(r"(?<!\w)'|'(?!\w)", " ", text)  # keep only word-internal apostrophes
    text = text.replace("_", " ")
    return " ".join(text.split())
