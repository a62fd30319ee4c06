"""English text normalisation for ASR training and scoring.

``normalize_en("Dr. Smith paid $5, at 10:30!")`` -> ``"dr smith paid five dollars at ten thirty"``.
Lower-case, NFKC, digits spelled out (integers, decimals, ordinals like 21st, ``$`` amounts, ``%``, simple times),
punctuation removed except word-internal apostrophes, whitespace collapsed. Letters keep their combining marks
(``İstanbul``, Devanagari vowel signs). A comma inside a number is a thousands separator only in the ``1,234,567``
form (``1,2,3`` is three numbers); ``-5`` is "minus five" (not after a letter or digit: ``covid-19``, ``10-5``
keep reading as two numbers). Fractions: ``½`` -> "one half", ``4½`` -> "four and a half", ``3⁄4`` (with the
fraction slash U+2044) -> "three quarters"; a plain ``3/4`` is left as two numbers (it may be a date). Years and
decades are read as plain numbers (``1990s`` -> "one thousand nine hundred ninety s").

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
_APOSTROPHES = str.maketrans({c: "'" for c in "\u2018\u2019\u0060\u00b4\u2032\u02bc"})  # ‘ ’ ` ´ ′ ʼ
_VULGAR = "¼½¾⅐⅑⅒⅓⅔⅕⅖⅗⅘⅙⅚⅛⅜⅝⅞"
_NUM = r"\d{1,3}(?:,\d{3})+(?!\d)(?:\.\d+)?|\d+(?:\.\d+)?"  # 1,234,567.5 or 1234567.5, never 1,2,3
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


def spell_fraction(num: int, den: int) -> str:
    """3/4 -> 'three quarters', 1/2 -> 'one half', 5/8 -> 'five eighths'."""
    name = {2: "half", 4: "quarter"}.get(den) or spell_ordinal(den)
    if num != 1:
        name = "halves" if name == "half" else name + "s"
    return f"{spell_int(num)} {name}"


def _vulgar_fraction(match: re.Match) -> str:
    """'½' -> ' one half ', '4½' -> ' four and a half ' (NFKC alone would turn '4½' into '41⁄2')."""
    num, den = (int(x) for x in unicodedata.normalize("NFKC", match.group(2)).split("\u2044"))
    if not match.group(1):
        return f" {spell_fraction(num, den)} "
    frac = spell_fraction(num, den).replace("one ", "a ", 1) if num == 1 else spell_fraction(num, den)
    return f" {spell_int(int(match.group(1)))} and {frac} "


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
    text = text.translate(_APOSTROPHES)  # before NFKC, which turns ´ into a space and a combining accent
    text = re.sub(rf"(\d*)([{_VULGAR}])", _vulgar_fraction, text)
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"\b(\d+)\u2044(\d+)\b", lambda m: f" {spell_fraction(int(m.group(1)), int(m.group(2)))} ", text)
    text = re.sub(r"(?<!\w)[-\u2212](?=\d)", " minus ", text)  # -5, not covid-19 or 10-5
    text = re.sub(rf"\$({_NUM})", lambda m: m.group(1) + " dollars", text)
    text = re.sub(r"(\d)%", r"\1 percent", text)
    text = re.sub(r"\b(\d{1,2}):(\d{2})\b",
                  lambda m: spell_int(int(m.group(1))) + ("" if m.group(2) == "00" else " " + (
                      "oh " + _ONES[int(m.group(2))] if m.group(2).startswith("0") else spell_int(int(m.group(2))))),
                  text)
    text = re.sub(r"\b(\d{1,3}(?:,\d{3})+|\d+)(st|nd|rd|th)\b",
                  lambda m: spell_ordinal(int(m.group(1).replace(",", ""))), text)
    text = re.sub(_NUM, lambda m: " " + _number(m) + " ", text)
    text = text.replace("&", " and ")
    # punctuation to spaces; combining marks (category M: the dot of lower-cased İ, Devanagari vowel signs) stay
    text = re.sub(r"[^\w\s']", lambda m: m.group(0) if unicodedata.category(m.group(0))[0] == "M" else " ", text)
    text = re.sub(r"(?<!\w)'|'(?!\w)", " ", text)  # keep only word-internal apostrophes
    text = text.replace("_", " ")
    return " ".join(text.split())
