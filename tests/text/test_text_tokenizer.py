import pytest
import sentencepiece as spm

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


def test_tokenizer_without_eos_at_3_is_refused(tmp_path):
    # a SentencePiece model with pad/unk/bos right but no eos: piece 3 is a real piece that decode() would drop
    spm.SentencePieceTrainer.train(sentence_iterator=iter(TEXTS), model_prefix=str(tmp_path / "other"),
                                   vocab_size=40, hard_vocab_limit=False, pad_id=BLANK_ID, unk_id=UNK_ID,
                                   bos_id=BOS_ID, eos_id=-1, minloglevel=2)
    with pytest.raises(ConfigError, match=r"other\.model: not a speechseq tokenizer .*eos ids are \(0, 1, 2, -1\)"):
        Tokenizer(tmp_path / "other.model")


def test_too_small_vocab_is_a_config_error_with_the_fix(tmp_path):
    with pytest.raises(ConfigError, match=r"vocab_size=8 is too small .*needs at least \d+\).*raise vocab_size, "
                                          r"lower character_coverage or use model_type char"):
        train_tokenizer(TEXTS, tmp_path, TokenizerConfig("bpe", 8))


def test_normalizer_keeps_combining_marks():
    assert normalize_en("İstanbul") == "i\u0307stanbul"  # lower-cased İ is i + combining dot, one word
    assert normalize_en("हिन्दी में बात") == "हिन्दी में बात"  # vowel signs and virama are marks, not punctuation
    assert normalize_en("ที่นี่!") == "ที่นี่"  # Thai vowel and tone marks above the consonants


def test_normalizer_maps_apostrophe_variants():
    for quote in "\u2019\u2018\u0060\u00b4\u2032\u02bc":
        assert normalize_en(f"don{quote}t stop") == "don't stop", hex(ord(quote))


def test_normalizer_numbers_commas_fractions_minus():
    assert normalize_en("1,234,567") == "one million two hundred thirty four thousand five hundred sixty seven"
    assert normalize_en("1,2,3") == "one two three" and normalize_en("2,5") == "two five"
    assert normalize_en("$1,000.50 for the 1,000th") == "one thousand point five zero dollars for the one thousandth"
    assert normalize_en("½ cup") == "one half cup" and normalize_en("4½ miles") == "four and a half miles"
    assert normalize_en("2¾ and ⅔") == "two and three quarters and two thirds"
    assert normalize_en("3\u20448 inch") == "three eighths inch"  # the fraction slash NFKC leaves in '⅜'
    assert normalize_en("-5 degrees, \u22123") == "minus five degrees minus three"
    assert normalize_en("covid-19 in 2020-21") == "covid nineteen in two thousand twenty twenty one"
