"""SentencePiece tokenizer with explicit special ids.

Ids 0..3 are fixed for every model: ``blank_id = 0`` (the CTC blank, also used as padding), ``unk_id = 1``,
``bos_id = 2``, ``eos_id = 3``. Pieces start at 4. The ``.model`` file is copied into every model directory, and
its SHA-256 is stored in every checkpoint so a model is never decoded with another tokenizer.

    tok = train_tokenizer(texts, "exp/tokenizer", TokenizerConfig(model_type="bpe", vocab_size=128))
    ids = tok.encode("hello world"); tok.decode(ids) == "hello world"
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal

import sentencepiece as spm

from speechseq.errors import ConfigError

BLANK_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


@dataclass
class TokenizerConfig:
    """How to train the SentencePiece model.

    Attributes:
        model_type: "bpe", "unigram" or "char".
        vocab_size: total size including the 4 special ids (ignored for "char", which takes every character seen).
        character_coverage: share of characters covered (1.0 for small alphabets; 0.9995 for CJK).
    """

    model_type: Literal["bpe", "unigram", "char"] = "bpe"
    vocab_size: int = 256
    character_coverage: float = 1.0


class Tokenizer:
    """Encode text to ids and back; wraps a trained ``sentencepiece`` model file."""

    def __init__(self, model_path: str | Path):
        self.model_path = Path(model_path)
        if not self.model_path.exists():
            raise ConfigError(f"{self.model_path}: tokenizer model not found")
        self.sp = spm.SentencePieceProcessor(model_file=str(self.model_path))
        ids = (self.sp.pad_id(), self.sp.unk_id(), self.sp.bos_id(), self.sp.eos_id())
        if ids != (BLANK_ID, UNK_ID, BOS_ID, EOS_ID):
            raise ConfigError(f"{self.model_path}: not a speechseq tokenizer (pad/unk/bos/eos ids are {ids}, "
                              f"want {(BLANK_ID, UNK_ID, BOS_ID, EOS_ID)})")
        self.blank_id, self.unk_id, self.bos_id, self.eos_id = BLANK_ID, UNK_ID, BOS_ID, EOS_ID

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(text, out_type=int)

    def decode(self, ids: Iterable[int]) -> str:
        ids = [int(i) for i in ids if int(i) > EOS_ID]
        return self.sp.decode(ids)

    def id_to_piece(self, i: int) -> str:
        return self.sp.id_to_piece(int(i))

    def is_word_start(self, i: int) -> bool:
        """True when piece ``i`` begins a new word (SentencePiece's '▁' prefix)."""
        return self.sp.id_to_piece(int(i)).startswith("\u2581")

    def sha256(self) -> str:
        return hashlib.sha256(self.model_path.read_bytes()).hexdigest()

    def save(self, out_dir: str | Path) -> Path:
        """Copy the model file into ``out_dir`` as ``tokenizer.model``; returns the new path."""
        out = Path(out_dir) / "tokenizer.model"
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.resolve() != self.model_path.resolve():
            shutil.copyfile(self.model_path, out)
        return out


def train_tokenizer(texts: Iterable[str], out_dir: str | Path, cfg: TokenizerConfig) -> Tokenizer:
    """Train a SentencePiece model on ``texts`` and write ``out_dir/tokenizer.model`` (+ ``.vocab``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sentences = [t.strip() for t in texts if t.strip()]
    if not sentences:
        raise ConfigError("train_tokenizer: no non-empty training text")
    model = io.BytesIO()
    options = dict(
        sentence_iterator=iter(sentences),
        model_writer=model,
        model_type=cfg.model_type,
        character_coverage=cfg.character_coverage,
        pad_id=BLANK_ID, pad_piece="<blank>", unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
        input_sentence_size=2_000_000, shuffle_input_sentence=True,
        minloglevel=2,
    )
    if cfg.model_type == "char":
        options["use_all_vocab"] = True
        options["vocab_size"] = len({c for s in sentences for c in s.replace(" ", "")}) + 5
    else:
        options["vocab_size"] = cfg.vocab_size
        options["hard_vocab_limit"] = False
    try:
        spm.SentencePieceTrainer.train(**options)
    except RuntimeError as e:
        if "Vocabulary size is smaller than required_chars" not in str(e):
            raise
        need = re.search(r"\d+ vs (\d+)", str(e))  # "... smaller than required_chars. 10 vs 31. ..."
        raise ConfigError(f"{out}: tokenizer vocab_size={cfg.vocab_size} is too small for the characters of the text"
                          + (f" (SentencePiece needs at least {need.group(1)})" if need else "")
                          + "; raise vocab_size, lower character_coverage or use model_type char") from None
    path = out / "tokenizer.model"
    path.write_bytes(model.getvalue())
    sp = spm.SentencePieceProcessor(model_file=str(path))
    (out / "tokenizer.vocab").write_text("".join(f"{sp.id_to_piece(i)}\n" for i in range(sp.get_piece_size())))
    return Tokenizer(path)
