"""Token n-gram language model (interpolated Kneser-Ney), ARPA in and out, for shallow fusion in beam search
(CTC prefix beam, AED beam, Paraformer beam over CIF slots).

The LM is estimated over the ASR tokenizer's pieces (one "word" per SentencePiece piece), so the beam search scores
a token extension with one table lookup and needs no word-boundary bookkeeping. A 6-gram over BPE pieces spans
about two words.

Why our own: KenLM is the usual tool, but its estimator (``lmplz``) is a C++ binary that pip does not install and
its Python module only queries. Estimating interpolated Kneser-Ney over a few thousand transcripts takes a second
in Python. The model is written in the ARPA format, so a KenLM (or SRILM) ARPA built over the same pieces loads
in its place (``read_arpa``).

Estimation (Chen & Goodman's interpolated Kneser-Ney, one discount per order): the highest order uses raw
counts; lower orders use continuation counts (the number of distinct tokens seen before the n-gram), except
n-grams that start with ``<s>``, which nothing precedes. With ``a`` these adjusted counts and ``D`` the order's
discount ``n1 / (n1 + 2 n2)``::

    p(w | h) = max(a(h w) - D, 0) / a(h .) + D * N1+(h .) / a(h .) * p(w | h minus its first token)

and the unigram level interpolates with the uniform distribution over the vocabulary. The backoff weight of a
context is its interpolation weight ``D * N1+(h .) / a(h .)``, which is exactly ARPA's backoff semantics.

    lm = estimate([tok.encode(t) for t in texts], order=6, vocab=[...])
    write_arpa(lm, "exp/lm.arpa"); lm = read_arpa("exp/lm.arpa")
    scorer = TokenLmScorer(lm, tokenizer); scorer.score(prefix_ids, next_id)   # natural-log probability
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from speechseq.errors import ConfigError
from speechseq.text.tokenizer import EOS_ID, Tokenizer

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
_LN10 = math.log(10.0)
_NO_PROB = -99.0  # ARPA's convention for <s>, which is never predicted


@dataclass
class NgramLm:
    """A backoff n-gram model. probs: log10 p(last | rest) per n-gram of every order (tuples of tokens);
    backoffs: log10 backoff weight per context n-gram (absent = 0)."""

    order: int
    probs: dict[tuple[str, ...], float]
    backoffs: dict[tuple[str, ...], float]

    def log10_prob(self, context: Sequence[str], word: str) -> float:
        """log10 p(word | context), backing off from the longest context the model holds."""
        context = tuple(context[max(0, len(context) - self.order + 1):]) if self.order > 1 else ()
        if (word,) not in self.probs:
            word = UNK
        acc = 0.0
        for start in range(len(context) + 1):
            h = context[start:]
            p = self.probs.get(h + (word,))
            if p is not None:
                return acc + p
            acc += self.backoffs.get(h, 0.0)
        return acc + self.probs.get((word,), _NO_PROB)

    def sentence_log10_prob(self, words: Sequence[str]) -> float:
        """log10 p(words </s> | <s>)."""
        seq = [BOS, *words, EOS]
        return sum(self.log10_prob(seq[max(0, i - self.order + 1):i], seq[i]) for i in range(1, len(seq)))


def _discount(count_of_counts: dict[int, int]) -> float:
    n1, n2 = count_of_counts.get(1, 0), count_of_counts.get(2, 0)
    if n1 == 0 or n2 == 0:
        return 0.5
    return min(max(n1 / (n1 + 2 * n2), 0.1), 0.9)


def estimate(sentences: Iterable[Sequence[str]], order: int, vocab: Iterable[str] = ()) -> NgramLm:
    """Interpolated Kneser-Ney from tokenised sentences (without ``<s>``/``</s>``; they are added).

    Args:
        sentences: token sequences (strings, e.g. SentencePiece pieces).
        order: n (>= 1).
        vocab: extra tokens to give a unigram probability although unseen (e.g. every tokenizer piece).
    Raises:
        ConfigError: ``order`` < 1 or no sentence.
    """
    if order < 1:
        raise ConfigError(f"n-gram order must be >= 1, got {order}")
    counts: list[dict[tuple[str, ...], int]] = [defaultdict(int) for _ in range(order + 1)]  # index = n
    num = 0
    for sent in sentences:
        seq = (BOS, *sent, EOS)
        num += 1
        for n in range(1, order + 1):
            for i in range(len(seq) - n + 1):
                g = seq[i:i + n]
                if g != (BOS,):
                    counts[n][g] += 1
    if num == 0:
        raise ConfigError("n-gram estimation: no training sentence")
    # adjusted counts: raw at the top order and for n-grams starting with <s>; continuation counts below
    adjusted: list[dict[tuple[str, ...], int]] = [{} for _ in range(order + 1)]
    adjusted[order] = dict(counts[order])
    for n in range(1, order):
        cont: dict[tuple[str, ...], int] = defaultdict(int)
        for g in counts[n + 1]:
            cont[g[1:]] += 1
        adjusted[n] = {g: (c if g[0] == BOS else cont[g]) for g, c in counts[n].items()}
    words = {g[0] for g in counts[1]} | set(vocab) | {UNK}
    words.discard(BOS)
    probs: dict[tuple[str, ...], float] = {}
    backoffs: dict[tuple[str, ...], float] = {}
    lower: dict[tuple[str, ...], float] = {}  # p(g) of the previous order, natural units
    for n in range(1, order + 1):
        coc: dict[int, int] = defaultdict(int)
        for c in adjusted[n].values():
            coc[c] += 1
        d = _discount(coc)
        totals: dict[tuple[str, ...], int] = defaultdict(int)
        types: dict[tuple[str, ...], int] = defaultdict(int)
        for g, c in adjusted[n].items():
            totals[g[:-1]] += c
            types[g[:-1]] += 1
        current: dict[tuple[str, ...], float] = {}
        if n == 1:
            total, gamma = totals[()], d * types[()] / totals[()]
            for w in words:
                current[(w,)] = max(adjusted[1].get((w,), 0) - d, 0.0) / total + gamma / len(words)
        else:
            for g, c in adjusted[n].items():
                h = g[:-1]
                gamma = d * types[h] / totals[h]
                current[g] = (c - d) / totals[h] + gamma * _backoff_prob(lower, backoffs, g[1:])
            for h, total in totals.items():
                backoffs[h] = math.log10(d * types[h] / total)
        for g, p in current.items():
            probs[g] = math.log10(p)
        lower.update(current)
    probs[(BOS,)] = _NO_PROB
    return NgramLm(order, probs, backoffs)


def _backoff_prob(probs: dict[tuple[str, ...], float], backoffs: dict[tuple[str, ...], float],
                  g: tuple[str, ...]) -> float:
    """p(g[-1] | g[:-1]) in natural units from the lower orders estimated so far (``backoffs`` in log10)."""
    scale = 1.0
    while g:
        p = probs.get(g)
        if p is not None:
            return scale * p
        scale *= 10.0 ** backoffs.get(g[:-1], 0.0)
        g = g[1:]
    return 0.0  # not reached: every unigram has a probability


def write_arpa(lm: NgramLm, path: str | Path) -> Path:
    """Write ``lm`` in the ARPA text format (written to a temporary file, then renamed); creates the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    by_order: list[list[tuple[str, ...]]] = [[] for _ in range(lm.order + 1)]
    for g in lm.probs:
        by_order[len(g)].append(g)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n\\data\\\n")
        for n in range(1, lm.order + 1):
            f.write(f"ngram {n}={len(by_order[n])}\n")
        for n in range(1, lm.order + 1):
            f.write(f"\n\\{n}-grams:\n")
            for g in sorted(by_order[n]):
                bow = lm.backoffs.get(g)
                line = f"{lm.probs[g]:.6f}\t{' '.join(g)}"
                f.write(f"{line}\t{bow:.6f}\n" if bow is not None and n < lm.order else line + "\n")
        f.write("\n\\end\\\n")
    tmp.replace(path)
    return path


def read_arpa(path: str | Path) -> NgramLm:
    """Read an ARPA file (ours, KenLM's or SRILM's). Raises ConfigError naming the file and line when malformed."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: language model not found")
    probs: dict[tuple[str, ...], float] = {}
    backoffs: dict[tuple[str, ...], float] = {}
    declared: dict[int, int] = {}
    section = None  # "data", or the order n being read
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line:
                continue
            if line == "\\data\\":
                section = "data"
            elif line == "\\end\\":
                break
            elif line.startswith("\\") and line.endswith("-grams:"):
                section = int(line[1:line.index("-")])
            elif section == "data" and line.startswith("ngram "):
                n, count = line[6:].split("=")
                declared[int(n)] = int(count)
            elif isinstance(section, int):
                fields = line.split()
                if len(fields) not in (section + 1, section + 2):
                    raise ConfigError(f"{path}:{lineno}: expected a log10 probability, {section} tokens and an "
                                      f"optional backoff, got {line!r}")
                try:
                    g = tuple(fields[1:section + 1])
                    probs[g] = float(fields[0])
                    if len(fields) == section + 2:
                        backoffs[g] = float(fields[-1])
                except ValueError:
                    raise ConfigError(f"{path}:{lineno}: not a number in {line!r}") from None
            else:
                raise ConfigError(f"{path}:{lineno}: unexpected line {line!r} (not an ARPA file?)")
    if not declared:
        raise ConfigError(f"{path}: no \\data\\ section (not an ARPA file?)")
    for n, count in declared.items():
        found = sum(1 for g in probs if len(g) == n)
        if found != count:
            raise ConfigError(f"{path}: header declares {count} {n}-grams, the file holds {found}")
    return NgramLm(max(declared), probs, backoffs)


class TokenLmScorer:
    """Scores token ids with an n-gram LM over the tokenizer's pieces; ``EOS_ID`` scores the end of sentence.
    Results are cached per (context, token); the cache is emptied when it reaches ``max_cache`` entries, so a
    long-running server does not grow without bound."""

    def __init__(self, lm: NgramLm, tokenizer: Tokenizer, max_cache: int = 1_000_000):
        self.lm = lm
        self.max_cache = max_cache
        self.pieces = [tokenizer.id_to_piece(i) for i in range(tokenizer.vocab_size)]
        self.pieces[EOS_ID] = EOS
        known = sum(1 for p in self.pieces[EOS_ID + 1:] if (p,) in lm.probs)
        if known == 0:
            raise ConfigError(f"language model shares no token with the tokenizer {tokenizer.model_path} "
                              f"(was it estimated over another tokenizer's pieces?)")
        self._cache: dict[tuple[tuple[int, ...], int], float] = {}

    def score(self, prefix: Sequence[int], token: int) -> float:
        """Natural-log p(token | prefix) (the prefix starts after ``<s>``)."""
        ctx = tuple(prefix[max(0, len(prefix) - self.lm.order + 1):]) if self.lm.order > 1 else ()
        key = (ctx, token)
        cached = self._cache.get(key)
        if cached is None:
            words = [self.pieces[i] for i in ctx]
            if len(ctx) < self.lm.order - 1:
                words = [BOS, *words]
            cached = self.lm.log10_prob(words, self.pieces[token]) * _LN10
            if len(self._cache) >= self.max_cache:
                self._cache.clear()
            self._cache[key] = cached
        return cached


@dataclass
class LmFusion:
    """Shallow fusion in beam search: a prefix ranks by ``log p_am + weight * log p_lm + length_bonus * tokens``;
    the finished prefix also gets ``weight * log p_lm(</s>)``."""

    scorer: TokenLmScorer
    weight: float = 0.5
    length_bonus: float = 1.0


def estimate_from_texts(texts: Iterable[str], tokenizer: Tokenizer, order: int) -> NgramLm:
    """Token n-gram over ``tokenizer``'s pieces from raw transcripts; every piece of the tokenizer gets a
    unigram probability."""
    sentences = [[tokenizer.id_to_piece(i) for i in tokenizer.encode(t)] for t in texts if t.strip()]
    vocab = [tokenizer.id_to_piece(i) for i in range(EOS_ID + 1, tokenizer.vocab_size)]
    return estimate(sentences, order, vocab)
