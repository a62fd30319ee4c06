"""Offline recognition API.

    asr = speechseq.load_asr("exp/ctc_tiny", device="cpu")
    results = asr.transcribe(["a.wav", (samples, 8000)], batch_size=8, word_timestamps=True)
    results[0].text, results[0].words[0].start_s
    asr.align(["a.wav"], ["the known text"])          # CTC forced alignment of given text: word times
    asr.transcribe("a.wav", word_timestamps=True, aligner=speechseq.load_asr("exp/aligner"))  # times by another model
    asr.transcribe(paths, warps=[0.9, 0.95, 1.0, 1.05, 1.1])   # test-time VTLN: each utterance at its best warp
    speechseq.load_asr("exp/ctc_tiny", bf16=True)      # the network under bf16 autocast (features, CIF weights and
                                                       # search scores stay fp32)

Inputs are file paths (any format soundfile reads) or ``(array, sample_rate)`` pairs; audio at another rate is
resampled to the model's. A model directory holds ``config.yaml``, ``tokenizer.model`` and ``model.pt``; loading it
reads nothing else (no data paths).
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Hashable, Iterator, Sequence, Union

import numpy as np
import torch
from torch import Tensor, nn

from speechseq.asr.ctc import CtcOutput, Hypothesis, WordTime, word_times
from speechseq.asr.model import build_asr_model
from speechseq.audio.io import load_audio, resample
from speechseq.config import from_dict
from speechseq.errors import AudioError, SpeechseqError
from speechseq.layers.masks import valid_mask
from speechseq.text.ngram import LmFusion, TokenLmScorer, read_arpa
from speechseq.text.tokenizer import EOS_ID, Tokenizer
from speechseq.train import checkpoint as ckpt

log = logging.getLogger("speechseq.infer")

AudioInput = Union[str, Path, tuple[np.ndarray, int]]
MIN_PAD_S = 0.5
"""Batches are zero-padded to at least this many seconds (lengths unchanged): enough for any subsampling front end."""


@dataclass
class TokenTime:
    """A token (its SentencePiece piece) with start/end times in seconds."""

    piece: str
    start_s: float
    end_s: float


@dataclass
class Transcript:
    """text; tokens (ids); score (log-prob of the decoder); words and token_times (one per token, same order as
    ``tokens``) with times in seconds when timestamps are requested."""

    text: str
    tokens: list[int]
    score: float
    words: list[WordTime] | None = None
    token_times: list[TokenTime] | None = None
    warp: float | None = None
    """The frequency-warp factor the utterance was decoded at, when ``transcribe`` was given ``warps``."""


TIMING_FILE = "timing.json"
"""Optional file of a model directory: the word-time shifts ``{"start_shift_s": .., "end_shift_s": ..}`` that
``speechseq align --calibrate`` measured (the model's emission delay); word timestamps add them."""


def read_timing(model_dir: str | Path) -> tuple[float, float]:
    """(start_shift_s, end_shift_s) of a model directory's ``timing.json``; (0, 0) without one."""
    path = Path(model_dir) / TIMING_FILE
    if not path.exists():
        return 0.0, 0.0
    try:
        data = json.loads(path.read_text())
        return float(data["start_shift_s"]), float(data["end_shift_s"])
    except (ValueError, KeyError, TypeError) as e:
        raise SpeechseqError(f"{path}: not a timing file ({type(e).__name__}: {e}); expected "
                             '{"start_shift_s": float, "end_shift_s": float}') from e


class Recognizer:
    def __init__(self, model: nn.Module, tokenizer: Tokenizer, device: torch.device, kind: str = "ctc",
                 timing: tuple[float, float] = (0.0, 0.0), bf16: bool = False):
        self.model, self.tokenizer, self.device = model.eval().to(device), tokenizer, device
        self.kind = kind
        """Model kind: "ctc", "paraformer" or "aed"."""
        self.bf16 = bf16
        """Run the network under bf16 autocast (:meth:`precision`)."""
        self.sample_rate = model.frontend.sample_rate
        self.timing = timing
        """(start, end) shifts in seconds added to word and token times (:func:`read_timing`)."""
        self._pieces = [tokenizer.id_to_piece(i) for i in range(tokenizer.vocab_size)]  # to check an LM's against

    def precision(self) -> contextlib.AbstractContextManager:
        """The context every forward pass of this recognizer runs in: bf16 autocast on its device when
        :attr:`bf16`, else nothing. Under it the matmuls and convolutions run in bf16 while the front end, the CIF
        weights and every log-softmax and search score stay fp32 (as in bf16 training). On this project's AVX512-BF16
        CPU it takes a 46M Paraformer's decode to 0.55-0.65x its fp32 time, and gains nothing at 3M or in AED's
        step-by-step decoder (docs/benchmarks.md); without such instructions oneDNN emulates bf16, slower than fp32."""
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def _load(self, item: AudioInput, where: str) -> np.ndarray:
        if isinstance(item, (str, Path)):
            wave, _ = load_audio(item, self.sample_rate)
            return wave
        if isinstance(item, tuple) and len(item) == 2:
            wave, sr = item
            if int(sr) <= 0:
                raise AudioError(f"{where}: sample rate must be a positive number of Hz, got {sr!r}")
            wave = np.asarray(wave)
            if wave.dtype.kind in "iu":  # integer PCM (e.g. scipy's int16 wav): to [-1, 1) like soundfile's floats
                half = (int(np.iinfo(wave.dtype).max) + 1) // (2 if wave.dtype.kind == "u" else 1)  # uint8: 128
                wave = (wave.astype(np.float64) - (half if wave.dtype.kind == "u" else 0)) / half
            elif wave.dtype.kind != "f":
                raise AudioError(f"{where}: expected float or integer PCM samples, got dtype {wave.dtype}")
            wave = np.ascontiguousarray(wave, dtype=np.float32)
            if wave.size == 0:
                raise AudioError(f"{where}: empty audio")
            if wave.ndim == 2:  # (samples, channels) as soundfile gives, or (channels, samples) as librosa does
                wave = wave.mean(axis=int(np.argmin(wave.shape)))
            if wave.ndim != 1:
                raise AudioError(f"{where}: expected shape (samples,) or (samples, channels), got {wave.shape}")
            if not np.isfinite(wave).all():
                raise AudioError(f"{where}: contains NaN or Inf")
            return resample(wave, int(sr), self.sample_rate) if int(sr) != self.sample_rate else wave
        raise SpeechseqError(f"{where}: expected a path or an (array, sample_rate) pair, got {type(item).__name__}")

    @property
    def methods(self) -> tuple[str, ...]:
        """Decoding methods of this model: "greedy" and "beam" (CTC prefix beam, AED beam search, Paraformer beam over
        its CIF slots, which differs from greedy only with an LM)."""
        return ("greedy", "beam")

    def load_lm(self, arpa: str | Path, weight: float = 0.5, length_bonus: float = 1.0) -> LmFusion:
        """An n-gram LM (ARPA over this model's tokenizer pieces, e.g. from ``speechseq lm``) for ``transcribe(...,
        lm=...)``: the beam search (CTC prefix beam, AED beam) then ranks by its own score + ``weight`` * LM log-prob
        + ``length_bonus`` per token; Paraformer's beam over its CIF slots likewise."""
        return LmFusion(TokenLmScorer(read_arpa(arpa), self.tokenizer), weight, length_bonus)

    def fits(self, lm: LmFusion) -> bool:
        """Whether ``lm`` scores this model's tokens: its scorer was built over the same pieces."""
        return lm.scorer.pieces[EOS_ID + 1:] == self._pieces[EOS_ID + 1:]

    def padded_batches(self, waves: Sequence[np.ndarray], batch_size: int
                       ) -> Iterator[tuple[list[int], Tensor, Tensor]]:
        """The batches ``transcribe`` decodes: waves (at the model's rate) sorted by length, ``batch_size`` at a time,
        as (their indices, zero-padded (B, S) samples, (B,) lengths), on the recognizer's device."""
        order = sorted(range(len(waves)), key=lambda i: len(waves[i]))
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            lens = torch.tensor([len(waves[i]) for i in idx])
            # at least MIN_PAD_S wide so that a batch of very short clips still yields encoder frames (a clip too
            # short for one frame gets lens 0 -> an empty transcript) instead of a conv error inside the model
            padded = torch.zeros(len(idx), max(int(lens.max()), int(MIN_PAD_S * self.sample_rate)))
            for row, i in enumerate(idx):
                padded[row, : len(waves[i])] = torch.from_numpy(waves[i])
            yield idx, padded.to(self.device), lens.to(self.device)

    @torch.no_grad()
    def transcribe(self, inputs: AudioInput | Sequence[AudioInput], batch_size: int = 8, method: str = "greedy",
                   beam_size: int = 10, word_timestamps: bool = False, lm: LmFusion | None = None,
                   aligner: Recognizer | None = None, warps: Sequence[float] | None = None,
                   warp_groups: Sequence[Hashable] | None = None) -> list[Transcript]:
        """Transcribe one input or a list; returns one Transcript per input, in input order.

        Args:
            inputs: a path, an (array, sample_rate) pair, or a list of these.
            batch_size: utterances decoded together (sorted by length to limit padding).
            method: one of :attr:`methods`: "greedy", or "beam" (CTC prefix beam search; AED beam search; Paraformer:
                beam search over its CIF slots, the same as greedy without ``lm``).
            beam_size: beam width for "beam".
            word_timestamps: add word and token start/end times (CTC and AED: CTC forced alignment of the
                hypothesis; Paraformer: the frames that fed each token through CIF). An AED hypothesis with more
                tokens than encoder frames cannot be aligned: its words and token_times are empty lists.
            lm: n-gram shallow fusion (:meth:`load_lm`); method "beam".
            warps: test-time vocal tract length normalisation: each utterance is decoded at the factor of ``warps``
                (frequency warps of its log-mel, :func:`speechseq.audio.functional.vtlp_warp`; 1 = unchanged) whose
                CTC posteriors are the most certain (:meth:`choose_warps`), decoded from that factor's own pass: one
                encoder pass per factor in all. For models trained with VTLP, on speakers unlike the training ones.
            warp_groups: with ``warps``, one label per input (e.g. its speaker): the factor is chosen per group
                instead, the one with the lowest entropy averaged over the group's utterances (speaker-level VTLN,
                :meth:`group_warps`), and every input is decoded at its group's factor: one encoder pass per factor
                plus one.
            aligner: with ``word_timestamps``, time the words by this other recognizer's CTC forced alignment of the
                transcript (:meth:`align`, with its calibrated shifts) instead of this model's own timestamps: one
                model recognises, another (e.g. a limited-context model calibrated with ``speechseq align
                --calibrate``) times. ``token_times`` is then None (the aligner's pieces are not ``tokens``).

        Raises:
            AudioError: a missing/unreadable/empty/non-finite file (named) or array (``inputs[i]``), a bad shape
                or sample rate. A clip too short for one encoder frame is not an error: its text is empty.
            SpeechseqError: an unknown ``method``, a ``batch_size``/``beam_size`` below 1, ``lm`` with another
                model kind or method, ``warps`` empty or not all positive, or ``warp_groups`` without ``warps`` or
                not one label per input.
        """
        if method not in self.methods:
            raise SpeechseqError(f"transcribe: unknown method {method!r} for a {self.kind} model "
                                 f"(choices: {', '.join(self.methods)})")
        if batch_size < 1 or beam_size < 1:
            raise SpeechseqError(f"transcribe: batch_size and beam_size must be >= 1, got {batch_size}, {beam_size}")
        if lm is not None and method != "beam":
            raise SpeechseqError(f"transcribe: LM fusion is for beam search (method 'beam'), not {method!r}")
        if lm is not None and not self.fits(lm):
            raise SpeechseqError("transcribe: the LM's scorer was built over another tokenizer than this model's "
                                 f"({self.tokenizer.model_path}); make it with this recognizer's load_lm")
        if aligner is not None and not word_timestamps:
            raise SpeechseqError("transcribe: an aligner times words; it needs word_timestamps=True")
        if warps is not None and (len(warps) == 0 or not all(0.0 < float(w) < float("inf") for w in warps)):
            raise SpeechseqError(f"transcribe: warps must be a non-empty list of positive factors, got {list(warps)}")
        single = is_single_input(inputs)
        items = [inputs] if single else list(inputs)
        if warp_groups is not None and (warps is None or len(warp_groups) != len(items)):
            raise SpeechseqError(f"transcribe: warp_groups needs warps and one label per input, got "
                                 f"{len(warp_groups)} labels for {len(items)} inputs"
                                 + ("" if warps is not None else " and no warps"))
        waves = [self._load(x, "input array" if single else f"inputs[{i}]") for i, x in enumerate(items)]
        results: list[Transcript | None] = [None] * len(waves)
        own_times = word_timestamps and aligner is None
        fixed = None if warp_groups is None else self.group_warps(waves, warps, warp_groups, batch_size)
        for idx, padded, lens in self.padded_batches(waves, batch_size):
            with self.precision():
                if warps is None:
                    warp = None
                    hyps = self.model.recognize(padded, lens, method, beam_size, spans=own_times, lm=lm)
                elif fixed is not None:  # each row at its group's factor: one pass, rows of a batch do not mix
                    warp = torch.tensor([fixed[i] for i in idx], dtype=torch.float64)
                    hyps = self.model.recognize(padded, lens, method, beam_size, spans=own_times, lm=lm,
                                                warp=warp.to(padded.device))
                else:  # decoded from the choice's own passes: no pass more than one per factor
                    warp, enc = self.warped_encode(padded, lens, warps)
                    hyps = self.model.decode_encoded(enc, method, beam_size, spans=own_times, lm=lm)
            shift = self.model.frame_shift_s
            for row, (i, hyp) in enumerate(zip(idx, hyps)):
                words = token_times = None
                if hyp.spans is not None:
                    pieces = [self.tokenizer.id_to_piece(t) for t in hyp.tokens]
                    words = word_times(hyp.spans, pieces, shift, *self.timing)
                    start_shift, end_shift = self.timing
                    token_times = [TokenTime(p, max(0.0, s.start * shift + start_shift),
                                             max(0.0, s.start * shift + start_shift, s.end * shift + end_shift))
                                   for p, s in zip(pieces, hyp.spans)]
                results[i] = Transcript(self.tokenizer.decode(hyp.tokens), hyp.tokens, hyp.score, words, token_times,
                                        None if warp is None else float(warp[row]))
        if aligner is not None:  # at another rate the aligner reads the inputs itself (one resampling, full band)
            audio = [(w, self.sample_rate) for w in waves] if aligner.sample_rate == self.sample_rate else items
            timed = aligner.align(audio, [r.text for r in results], batch_size)  # type: ignore[union-attr]
            for r, words in zip(results, timed):
                r.words = _with_transcript_words(words or [], r.text)  # type: ignore[union-attr]
        return results  # type: ignore[return-value]

    @torch.no_grad()
    def choose_warps(self, padded: Tensor, lens: Tensor, warps: Sequence[float]) -> Tensor:
        """(B,) factors: per utterance of a (B, S) batch, the factor of ``warps`` whose CTC posteriors (the CTC
        head every model kind has) have the lowest mean entropy over the utterance's frames (the first such factor
        on a tie, e.g. for a clip without frames). One encoder pass per factor (:meth:`warped_encode`).

        Why entropy: over FSDD's four leave-one-speaker-out folds it picked better warps than the mean best
        log-posterior or the top-2 margin (egs/fsdd/asr/RESULTS.md). :meth:`group_warps` chooses per speaker instead."""
        return self.warped_encode(padded, lens, warps)[0]

    @torch.no_grad()
    def warped_encode(self, padded: Tensor, lens: Tensor, warps: Sequence[float]) -> tuple[Tensor, CtcOutput]:
        """:meth:`choose_warps`' (B,) factors, and the CTC model's output for the batch with every row taken from
        the pass at its chosen factor, which the model's ``decode_encoded`` decodes: one encoder pass per factor
        in all, none repeated at the chosen one. Rows of a batch do not mix in the encoder, so a row equals its
        pass at that factor for the whole batch."""
        factors = torch.tensor([float(w) for w in warps], dtype=torch.float64)  # Transcript.warp: the given value
        best, best_entropy = self._warp_pass(padded, lens, factors[0])
        pick = torch.zeros_like(best.lens)
        for k in range(1, len(factors)):
            out, entropy = self._warp_pass(padded, lens, factors[k])
            better = entropy < best_entropy  # strictly: the first factor wins a tie
            best_entropy = torch.where(better, entropy, best_entropy)
            pick = torch.where(better, k, pick)
            best = CtcOutput(None, torch.where(better[:, None, None], out.log_probs, best.log_probs), best.lens, {},
                             torch.where(better[:, None, None], out.hidden, best.hidden))
        return factors[pick.cpu()], best

    def _warp_pass(self, padded: Tensor, lens: Tensor, w: Tensor) -> tuple[CtcOutput, Tensor]:
        """The CTC model's pass over a (B, S) batch at factor ``w`` (a 0-dim tensor) and its (B,) mean frame
        entropies (nats) over each row's valid frames (0 for a row without frames)."""
        ctc = self.model if self.kind == "ctc" else self.model.ctc
        with self.precision():
            out = ctc(padded, lens, warp=w.expand(padded.shape[0]))
        frame = -(out.log_probs.exp() * out.log_probs).sum(-1)  # (B, T) nats
        valid = valid_mask(out.lens, frame.shape[1])
        return out, (frame * valid).sum(1) / valid.sum(1).clamp(min=1)

    @torch.no_grad()
    def group_warps(self, waves: Sequence[np.ndarray], warps: Sequence[float], groups: Sequence[Hashable],
                    batch_size: int = 8) -> list[float]:
        """Speaker-level test-time VTLN: per wave (at the model's rate), the factor of ``warps`` chosen for its
        group (``groups[i]``, e.g. its speaker): the one whose CTC posteriors have the lowest entropy averaged over
        the group's utterances (each utterance's mean frame entropy, as :meth:`choose_warps`; the first factor on a
        tie). One encoder pass per factor. A group of one utterance gets :meth:`choose_warps`' factor.

        Why per group: one factor per speaker is read from many utterances, so it does not chase each utterance's
        chance certainty. On egs/synth_en small's held-out voices (9 factors, 0.8-1.2) it gave 4.67% greedy WER
        against 5.62% per utterance and 6.80% without warps (egs/synth_en/asr/RESULTS.md); on FSDD's one-digit
        clips per utterance was better (egs/fsdd/asr/RESULTS.md)."""
        if len(groups) != len(waves):
            raise SpeechseqError(f"group_warps: {len(groups)} group labels for {len(waves)} waves")
        factors = torch.tensor([float(w) for w in warps], dtype=torch.float64)
        entropy = torch.zeros(len(waves), len(factors), dtype=torch.float64)
        for idx, padded, lens in self.padded_batches(waves, batch_size):
            for k in range(len(factors)):
                entropy[idx, k] = self._warp_pass(padded, lens, factors[k])[1].double().cpu()
        members: dict[Hashable, list[int]] = {}
        for i, g in enumerate(groups):
            members.setdefault(g, []).append(i)
        chosen = [0.0] * len(waves)
        for rows in members.values():
            best = float(factors[int(entropy[rows].mean(0).argmin())])  # argmin: the first on a tie
            for i in rows:
                chosen[i] = best
        return chosen

    @torch.no_grad()
    def align(self, inputs: Sequence[AudioInput], texts: Sequence[str], batch_size: int = 8
              ) -> list[list[WordTime] | None]:
        """CTC forced alignment of known transcripts: the word start/end times (with this model's calibrated shifts,
        :attr:`timing`) of ``texts[i]`` in ``inputs[i]``, by this model's CTC head (every model kind has one).

        Returns one list of words per input, in input order; None where the text has more tokens than the audio
        has encoder frames (it cannot be aligned). An empty text gives an empty list.

        Raises:
            SpeechseqError: ``inputs`` and ``texts`` of different lengths. AudioError: as :meth:`transcribe`.
        """
        if isinstance(inputs, (str, Path)) or isinstance(texts, str) or (
                isinstance(inputs, tuple) and len(inputs) == 2 and not isinstance(inputs[1], (str, Path, tuple))):
            raise SpeechseqError("align: inputs and texts are lists, one text per input (e.g. [path], [text])")
        if len(inputs) != len(texts):
            raise SpeechseqError(f"align: {len(inputs)} inputs but {len(texts)} texts")
        if batch_size < 1:
            raise SpeechseqError(f"align: batch_size must be >= 1, got {batch_size}")
        waves = [self._load(x, f"inputs[{i}]") for i, x in enumerate(inputs)]
        ctc = getattr(self.model, "ctc", self.model)  # Paraformer and AED keep their encoder + CTC head in .ctc
        results: list[list[WordTime] | None] = [None] * len(waves)
        for idx, padded, lens in self.padded_batches(waves, batch_size):
            targets = [Hypothesis(self.tokenizer.encode(texts[i]), [], 0.0) for i in idx]
            with self.precision():
                spans_of = ctc.token_spans(padded, lens, targets)
            for i, target, spans in zip(idx, targets, spans_of):
                if target.tokens and not spans:
                    continue  # too many tokens for the frames
                pieces = [self.tokenizer.id_to_piece(t) for t in target.tokens]
                results[i] = word_times(spans, pieces, self.model.frame_shift_s, *self.timing)
        return results


def is_single_input(inputs: AudioInput | Sequence[AudioInput]) -> bool:
    """Whether ``inputs`` is one input (a path or an (array, sample_rate) pair) rather than a list or tuple of them:
    a 2-tuple is a pair unless its first item is a path or a pair itself."""
    return not isinstance(inputs, (list, tuple)) or (isinstance(inputs, tuple) and len(inputs) == 2
                                                     and not isinstance(inputs[0], (str, Path, tuple)))


def _with_transcript_words(words: list[WordTime], text: str) -> list[WordTime]:
    """An aligner's words spelled as the transcript spells them (its tokenizer may map characters it lacks to
    <unk>), when both have as many words; otherwise as the aligner has them."""
    spelled = text.split()
    if len(spelled) != len(words):
        return words
    return [WordTime(w, t.start_s, t.end_s) for w, t in zip(spelled, words)]


def load_model_dir(model_dir: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, Tokenizer, str]:
    """Build the model of a model directory and load its averaged weights; checks the tokenizer hash.
    Returns the model, its tokenizer and its kind."""
    from speechseq.train.asr import AsrExperimentConfig

    model_dir = Path(model_dir)
    weights = model_dir / "model.pt"
    if not weights.exists():
        raise SpeechseqError(f"{model_dir}: not a model directory (no model.pt; has training finished?)")
    state = ckpt.load(weights, map_location="cpu")
    cfg = from_dict(AsrExperimentConfig, state["config"])
    tokenizer = Tokenizer(model_dir / "tokenizer.model")
    if state.get("tokenizer_sha256") and state["tokenizer_sha256"] != tokenizer.sha256():
        raise SpeechseqError(f"{model_dir}/tokenizer.model does not match the tokenizer the model was trained with")
    model = build_asr_model(cfg.model, tokenizer.vocab_size)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), tokenizer, cfg.model.kind


def load_asr(model_dir: str | Path, device: str = "cpu", int8: bool = False, bf16: bool = False) -> Recognizer:
    """Load a trained ASR model directory (CTC, Paraformer or AED) as a :class:`Recognizer`. ``int8``: decode with
    int8 dynamic-quantized Linear layers (CPU only; :func:`speechseq.infer.quantize.quantize_int8`). ``bf16``: run
    the network under bf16 autocast (:meth:`Recognizer.precision`; CUDA, or a CPU with native bf16 instructions)."""
    dev = torch.device(device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    if int8 and dev.type != "cpu":
        raise SpeechseqError(f"{model_dir}: int8 decoding runs on the CPU only, not on {dev}")
    if int8 and bf16:
        raise SpeechseqError(f"{model_dir}: choose int8 or bf16 decoding, not both")
    if bf16:
        from speechseq.train import loop  # lazily: it imports the training data loader and torch.distributed

        if not loop.bf16_native(dev):
            log.warning("%s: bf16 decoding on %s, which has no native bf16 instructions (AVX512-BF16/AMX on a CPU): "
                        "bf16 is emulated there and decodes several times slower than fp32", model_dir, dev)
    model, tokenizer, kind = load_model_dir(model_dir, dev)
    if int8:
        from speechseq.infer.quantize import quantize_int8

        model = quantize_int8(model)
    return Recognizer(model, tokenizer, dev, kind, read_timing(model_dir), bf16=bf16)
