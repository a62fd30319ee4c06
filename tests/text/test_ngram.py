import math

import pytest
import torch

from speechseq.asr.ctc import prefix_beam_search
from speechseq.errors import ConfigError
from speechseq.text.ngram import (BOS, EOS, UNK, LmFusion, TokenLmScorer, estimate, estimate_from_texts, read_arpa,
                                  write_arpa)
from speechseq.text.tokenizer import TokenizerConfig, train_tokenizer

SENTS = [s.split() for s in ["a b c", "a b d", "b c a", "c a b c", "a a b", "d c b a", "b b c d"]]
VOCAB = ["a", "b", "c", "d", "e"]  # "e" never seen: it still gets a unigram probability


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_kneser_ney_distributions_sum_to_one(order):
    lm = estimate(SENTS, order, VOCAB)
    outcomes = VOCAB + [EOS, UNK]
    # seen contexts, a context seen only as a lower-order suffix, and an unseen one
    for ctx in [[BOS], [BOS, "a"], ["a", "b"], ["b", "c"], ["c", "b", "a"], ["e", "e"], ["d", "d", "a"]]:
        total = sum(10 ** lm.log10_prob(ctx, w) for w in outcomes)
        assert total == pytest.approx(1.0, abs=1e-9), (order, ctx)


def test_seen_continuations_beat_unseen_and_sentences_score():
    lm = estimate(SENTS, 3, VOCAB)
    assert lm.log10_prob(["a"], "b") > lm.log10_prob(["a"], "d")  # "a b" seen 4 times, "a d" never
    assert lm.log10_prob([BOS, "a"], "b") > lm.log10_prob([BOS, "a"], "c")
    assert lm.log10_prob(["a", "b"], "zzz") == lm.log10_prob(["a", "b"], UNK)  # out of vocabulary -> <unk>
    assert lm.sentence_log10_prob(["a", "b", "c"]) > lm.sentence_log10_prob(["c", "b", "e"])


def test_arpa_round_trip(tmp_path):
    lm = estimate(SENTS, 3, VOCAB)
    back = read_arpa(write_arpa(lm, tmp_path / "lm.arpa"))
    assert back.order == 3 and set(back.probs) == set(lm.probs)
    for ctx, w in [([BOS], "a"), (["a", "b"], "c"), (["d", "d"], "e"), (["c", "a"], EOS)]:
        assert back.log10_prob(ctx, w) == pytest.approx(lm.log10_prob(ctx, w), abs=1e-5)
    assert not (tmp_path / "lm.arpa.tmp").exists()


def test_write_arpa_creates_the_folder(tmp_path):
    path = write_arpa(estimate(SENTS, 2, VOCAB), tmp_path / "exp" / "lm" / "lm.arpa")
    assert read_arpa(path).order == 2


def test_bad_arpa_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.arpa"
    bad.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-0.3\ta\n-0.3\n\\end\\\n")
    with pytest.raises(ConfigError, match=r"bad.arpa:6"):
        read_arpa(bad)
    short = tmp_path / "short.arpa"
    short.write_text("\\data\\\nngram 1=3\n\n\\1-grams:\n-0.3\ta\n-0.3\tb\n\\end\\\n")
    with pytest.raises(ConfigError, match="declares 3 1-grams, the file holds 2"):
        read_arpa(short)
    with pytest.raises(ConfigError, match="not found"):
        read_arpa(tmp_path / "missing.arpa")
    with pytest.raises(ConfigError, match="order must be"):
        estimate(SENTS, 0)


@pytest.fixture(scope="module")
def char_tok(tmp_path_factory):
    out = tmp_path_factory.mktemp("tok")
    return train_tokenizer(["ab ac ab ba ca", "abc cab"], out, TokenizerConfig(model_type="char"))


def test_fusion_picks_the_sentence_the_lm_knows(char_tok):
    good, bad = char_tok.encode("ab"), char_tok.encode("ac")
    assert good[:-1] == bad[:-1] and good[-1] != bad[-1]
    V = char_tok.vocab_size
    # one peaked frame per shared token, then a frame slightly favouring the wrong last token
    rows = []
    for tok in good[:-1]:
        row = torch.full((V,), 1e-4)
        row[tok] = 1.0
        rows += [row, torch.eye(V)[0] + 1e-4]
    last = torch.full((V,), 1e-4)
    last[good[-1]], last[bad[-1]] = 0.45, 0.55
    rows.append(last)
    lp = (torch.stack(rows) / torch.stack(rows).sum(-1, keepdim=True)).log()[None]
    lens = torch.tensor([lp.shape[1]])
    plain = prefix_beam_search(lp, lens, beam_size=4)[0][0]
    assert plain.tokens == bad
    lm = estimate_from_texts(["ab"] * 20 + ["ba"], char_tok, order=3)
    fusion = LmFusion(TokenLmScorer(lm, char_tok), weight=0.5, length_bonus=0.0)
    fused = prefix_beam_search(lp, lens, beam_size=4, lm=fusion)[0][0]
    assert fused.tokens == good
    # the reported score is the fused one: CTC log-prob plus the weighted LM log-prob of the tokens and </s>
    lm_lp = sum(fusion.scorer.score(good[:i], good[i]) for i in range(len(good))) + fusion.scorer.score(good, 3)
    ctc_only = {tuple(h.tokens): h.score for h in prefix_beam_search(lp, lens, beam_size=4)[0]}
    assert fused.score == pytest.approx(ctc_only[tuple(good)] + 0.5 * lm_lp, abs=1e-4)
    # weight 0 and bonus 0: the plain search
    zero = LmFusion(TokenLmScorer(lm, char_tok), weight=0.0, length_bonus=0.0)
    assert prefix_beam_search(lp, lens, beam_size=4, lm=zero)[0][0].tokens == bad


def test_scorer_rejects_an_lm_over_other_pieces(char_tok):
    with pytest.raises(ConfigError, match="shares no token"):
        TokenLmScorer(estimate([["x1", "y2"]], 2), char_tok)
    assert math.isfinite(TokenLmScorer(estimate_from_texts(["ab"], char_tok, 2), char_tok).score([], 4))
