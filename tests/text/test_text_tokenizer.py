import pytest

from speechseq.errors import ConfigError
from speechseq.text.normalize import normalize_en, spell_int, spell_ordinal
from speechseq.text.score import error_rates
from speechseq.text.tokenizer import BLANK_ID, BOS_ID, EOS_ID, UNK_ID, Tokenizer, TokenizerConfig, train_tokenizer

TEXTS = ["turn on the kitchen light", "call seven four two", "what time is it", "move the red box left",
         "set an alarm for six thirty", "play some music in the bedroom"] * 20


@pytest.mark.parametrize("kind", ["bpe", "unigram", "char"])
def test_round_trip_and_special_ids(tmp_path, kind):
    tok = train_tokenizer(TEXTS, tmp_path, TokenizerConfig(kind, 48))
    for text in set(TEXTS):
        ids = tok.encode(text)
        assert all(i > EOS_ID for i in ids)
        assert tok.decode(ids) == text
    assert (tok.blank_id, tok.unk_id, tok.bos_id, tok.eos_id) == (BLANK_ID, UNK_ID, BOS_ID, EOS_ID) == (0, 1, 2, 3)
    assert tok.id_to_piece(0) == "<blank>"
    # saved copy loads to the same ids and hash
    copy = Tokenizer(tok.save(tmp_path / "model_dir"))
    assert copy.encode("call the kitchen") == tok.encode("call the kitchen") and copy.sha256() == tok.sha256()


def test_decode_drops_specials_and_word_starts(tmp_path):
    tok = train_tokenizer(TEXTS, tmp_path, TokenizerConfig("bpe", 40))
    ids = tok.encode("call seven")
    assert tok.decode([BLANK_ID, *ids, EOS_ID]) == "call seven"
    starts = [tok.is_word_start(i) for i in ids]
    assert starts[0] and sum(starts) == 2


def test_missing_tokenizer_file(tmp_path):
    with pytest.raises(ConfigError, match="tokenizer model not found"):
        Tokenizer(tmp_path / "nope.model")


def test_normalizer():
    assert spell_int(0) == "zero" and spell_int(115) == "one hundred fifteen"
    assert spell_int(2024) == "two thousand twenty four" and spell_int(1_000_001) == "one million one"
    assert spell_ordinal(21) == "twenty first" and spell_ordinal(30) == "thirtieth" and spell_ordinal(12) == "twelfth"
    assert normalize_en("Hello, World!  It's 5 o'clock.") == "hello world it's five o'clock"
    assert normalize_en("Pay $3.50 by 10:05, 'now'") == "pay three point five zero dollars by ten oh five now"
    assert normalize_en("50% of 007") == "fifty percent of zero zero seven"


def test_error_rates():
    r = error_rates(["the cat sat", "a b"], ["the bat sat down", "a b"])
    assert r.ref_words == 5 and r.substitutions == 1 and r.insertions == 1 and r.deletions == 0
    assert r.wer == pytest.approx(2 / 5)
    assert error_rates(["Hello, world"], ["hello world"]).wer == 0.0
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        error_rates(["a", "b"], ["a"])
