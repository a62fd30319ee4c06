"""CTC vs AED vs Paraformer, side by side in one run: WER and decoding real-time factor.

    # trained model directories (same encoder size), decoded on a test manifest:
    python benchmarks/bench_asr_models.py --manifest egs/synth_en/asr/data/tiny/test.jsonl \
        --lm egs/synth_en/asr/exp/ctc_tiny/lm.arpa \
        --model ctc=egs/synth_en/asr/exp/ctc_tiny --model aed=egs/synth_en/asr/exp/aed_tiny \
        --model paraformer=egs/synth_en/asr/exp/paraformer_tiny \
        --model paraformer+mwer=egs/synth_en/asr/exp/paraformer_tiny/mwer
    # decoding cost at FunASR's conformer Paraformer size (random weights, 10 s of real speech, 40 tokens):
    python benchmarks/bench_asr_models.py --funasr-size

Trained part: every model directory is decoded with each of its methods (CTC: greedy, prefix beam; AED: greedy,
beam; Paraformer: greedy; with ``--lm ARPA``, every model also beam + n-gram shallow fusion) through
``speechseq.load_asr(...).transcribe``; utterances are decoded one at a time
(``--batch-size``), and the candidates take turns per round (``--repeat``) so load changes hit all alike; RTF is
the median round's decode time / audio seconds. "x AED beam" is the AED beam row's time over the row's time.
Each model's encoder pass (front end and encoder over the same batches, plus the CTC head for CTC models, the only
ones whose decoding reads it unless CTC prefix scoring is on) is timed as one more candidate;
"decoder RTF" is a row's time minus it (the decoding method's own cost) and "decoder x AED beam" compares those.

``--funasr-size``: models at the configuration of FunASR's conformer Paraformer (12-layer conformer encoder d256, 4
heads, FF 2048, kernel 15, conv2d x4; 6-layer decoder FF 2048; 4234 characters: about 46M parameters) and the AR
conformer baseline with the same encoder and decoder sizes, random weights, decoding 10 s of real speech to exactly
``--tokens`` tokens (Paraformer: the CIF predictor's bias is set so that it fires that many; AED: min and max length).
The references (``--ref-*``) were measured by the project with FunASR on this kind of machine, 2 threads, 10 s.
The encoder pass alone is timed in the same rounds, so each fp32 row also shows its decoder's own time (the row's
time minus that pass) and how many times the Paraformer decoder's it is.
``--dw-striding`` adds a Paraformer row with speechseq's own depthwise-separable x4 subsampling (FastConformer
style, the recipes' default) in place of FunASR's conv2d, every other size the same: not FunASR's configuration, but
what a speechseq model of that size costs.

``--int8``: every model is also timed (and, if trained, scored) with int8 dynamic-quantized Linear layers
(:func:`speechseq.infer.quantize.quantize_int8`), in the same interleaved rounds as its fp32 rows. ``--bf16``: the
same with the network under bf16 autocast (``load_asr(..., bf16=True)``; fast on CPUs with AVX512-BF16 or AMX).

``--flops`` (with ``--funasr-size``): the FunASR-size Paraformer decode's floating-point operations, counted by
``torch.utils.flop_counter.FlopCounterMode`` (matrix products and convolutions, by part of the model), and the
throughput of a large square GEMM on this machine (fp32, and bf16 with ``--bf16``); their quotient over the audio's
duration is the RTF of a decode that ran every counted operation at the large GEMM's rate (a floor for this network
here: its own smaller shapes run slower), printed beside the measured RTF. Top-level ``Linear`` rows are the
decoder's cross-attention keys/values over the encoder output and its output layer, called outside its layers.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_decode import speech_pool, windows  # noqa: E402
from common import count_params, markdown_table, print_header, set_threads, time_interleaved  # noqa: E402
from speechseq.asr.conformer import ConformerConfig  # noqa: E402
from speechseq.asr.model import AsrModelConfig, build_asr_model  # noqa: E402
from speechseq.audio.io import load_audio  # noqa: E402
from speechseq.data.manifest import read_manifest  # noqa: E402
from speechseq.infer.quantize import quantize_int8  # noqa: E402
from speechseq.infer.recognizer import load_asr  # noqa: E402
from speechseq.layers.decoder import DecoderConfig  # noqa: E402
from speechseq.train.loop import bf16_native  # noqa: E402
from speechseq.text.score import error_rates  # noqa: E402

SAMPLE_RATE = 16000


def trained_rows(models: list[tuple[str, str]], manifest: str, beam_size: int, batch_size: int, repeat: int,
                 max_utts: int, lm: str | None = None, lm_weight: float = 0.6, lm_bonus: float = 1.5,
                 int8: bool = False, bf16: bool = False) -> tuple[list[list[object]], list[list[object]], int, float]:
    utts = read_manifest(manifest)[: max_utts or None]
    waves = [(load_audio(u.audio, SAMPLE_RATE, u.offset, u.duration)[0], SAMPLE_RATE) for u in utts]
    audio_s = sum(len(w) for w, _ in waves) / SAMPLE_RATE
    refs = [u.text for u in utts]
    cands, outputs, params = {}, {}, {}
    loads = [(name, model_dir, "") for name, model_dir in models]
    loads += [(f"{name}@int8", model_dir, "int8") for name, model_dir in models] if int8 else []
    loads += [(f"{name}@bf16", model_dir, "bf16") for name, model_dir in models] if bf16 else []
    for name, model_dir, precision in loads:
        asr = load_asr(model_dir, "cpu", int8=precision == "int8", bf16=precision == "bf16")
        # quantized Linear layers hide their weights from parameters(): report the fp32 model's count
        params[name] = params[name.split("@")[0]] if precision else count_params(asr.model)
        cands[(name, ENCODER)] = encoder_pass(asr, waves, batch_size)
        fusion = asr.load_lm(lm, lm_weight, lm_bonus) if lm else None
        variants = [(m, None) for m in asr.methods if not (asr.kind == "paraformer" and m == "beam")]  # = greedy
        variants += [("beam", fusion)] if fusion else []
        for method, fused in variants:
            label = (name, "greedy" if method == "greedy" else f"beam{beam_size}" + ("+LM" if fused else ""))

            def run(asr=asr, method=method, fused=fused, label=label):
                outputs[label] = asr.transcribe(waves, batch_size=batch_size, method=method, beam_size=beam_size,
                                                lm=fused)

            cands[label] = run
    timings = time_interleaved(cands, repeat=repeat, warmup=0)
    aed_key = next(((n, m) for n, m in timings if n.startswith("aed") and m == f"beam{beam_size}"), None)
    aed_beam = timings[aed_key].median_s if aed_key else float("nan")
    aed_beam_dec = aed_beam - timings[(aed_key[0], ENCODER)].median_s if aed_key else float("nan")
    rows = []
    for (name, method), t in timings.items():
        if method == ENCODER:
            continue
        rates = error_rates(refs, [r.text for r in outputs[(name, method)]])
        dec_s = t.median_s - timings[(name, ENCODER)].median_s
        dec_s = dec_s if dec_s > 0 else float("nan")  # within timing noise of the encoder pass
        rows.append([name, method, f"{params[name] / 1e6:.1f}M", 100 * rates.wer, 100 * rates.cer,
                     t.median_s / audio_s, aed_beam / t.median_s, dec_s / audio_s, aed_beam_dec / dec_s])
    enc_rows = [[name, t.median_s / audio_s] for (name, method), t in timings.items() if method == ENCODER]
    return rows, enc_rows, len(utts), audio_s


ENCODER = "encoder pass"


def encoder_pass(asr, waves: list[tuple[object, int]], batch_size: int):
    """A candidate that runs only the front end and encoder (and a CTC model's head) over the same batches as
    ``transcribe``: the part every decoding method of the model shares, so row time minus this is the decoder's
    own time (Paraformer and AED skip the CTC head: ``CtcModel.forward(head=False)``)."""
    encoder = asr.model if asr.kind == "ctc" else asr.model.ctc
    samples = [w for w, _ in waves]  # already at the model's rate

    @torch.no_grad()
    def run():
        for _, padded, lens in asr.padded_batches(samples, batch_size):
            with asr.precision():
                encoder(padded, lens, head=asr.kind == "ctc")
    return run


def funasr_size_models(vocab: int, seed: int, subsampling: str = "conv2d",
                       kinds: tuple[str, ...] = ("paraformer", "aed")) -> dict[str, torch.nn.Module]:
    enc = ConformerConfig(num_features=80, d_model=256, num_layers=12, num_heads=4, ff_expansion=8, conv_kernel=15,
                          subsampling=subsampling, subsampling_factor=4)
    dec = DecoderConfig(num_layers=6, num_heads=4, ffn_dim=2048)
    out = {}
    for kind in kinds:
        cfg = AsrModelConfig(kind=kind, encoder=enc)
        cfg.paraformer.decoder = dec
        cfg.aed.decoder = dec
        torch.manual_seed(seed)
        out[kind] = build_asr_model(cfg, vocab).eval()
    return out


def under_bf16(fn):
    """``fn`` run under CPU bf16 autocast (what ``Recognizer.precision`` does for a ``bf16=True`` recognizer)."""
    def run():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return fn()
    return run


def gemm_flops_per_s(dtype: torch.dtype, n: int = 2048, repeat: int = 5) -> float:
    """Best-of-``repeat`` throughput of an n x n x n matrix product (the rate a well-blocked GEMM reaches here)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    return 2 * n**3 / time_interleaved({"mm": lambda: torch.mm(a, b)}, repeat=repeat)["mm"].min_s


def flop_rows(para: torch.nn.Module, one: tuple[torch.Tensor, torch.Tensor], duration_s: float,
              measured: dict[str, float], bf16: bool) -> tuple[list[list[object]], list[list[object]]]:
    """The Paraformer decode's FLOPs by part, and for each precision the RTF floor (FLOPs / GEMM rate / duration)
    beside the measured RTF (``measured``: row name -> RTF)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        para.recognize(*one)
    total = counter.get_total_flops()
    by_module = counter.get_flop_counts()
    # FlopCounterMode names a module by the class of the outermost module called (recognize() calls the CTC
    # model, the predictor and the decoder in turn) and its path below it; keep two levels, and the subsampling
    parts = [[name, sum(ops.values()) / 1e9, 100 * sum(ops.values()) / total] for name, ops in by_module.items()
             if name != "Global" and (name.count(".") <= 1 or name.endswith("encoder.subsampling"))]
    parts.append(["total", total / 1e9, 100.0])
    floors = []
    for label, dtype, row in [("fp32", torch.float32, "Paraformer"), ("bf16", torch.bfloat16, "Paraformer bf16")]:
        if dtype is torch.bfloat16 and not bf16:
            continue
        # emulated bf16 runs a 2048^3 product at well under 1 GFLOP/s (a minute each): a smaller one tells as much
        n = 2048 if dtype is torch.float32 or bf16_native(torch.device("cpu")) else 512
        rate = gemm_flops_per_s(dtype, n)
        floor = total / rate / duration_s
        rtf = measured.get(row, float("nan"))
        floors.append([label, f"{n}^3", rate / 1e9, floor, rtf, rtf / floor])
    return parts, floors


def fire_exactly(para: torch.nn.Module, one: tuple[torch.Tensor, torch.Tensor], tokens: int) -> int:
    """Set the CIF predictor so that it fires exactly ``tokens`` tokens on ``one``: a constant weight of
    (tokens - tail threshold + 0.2) / frames per frame. Returns the encoder's frame count."""
    frames = int(para.ctc(*one).lens[0])
    with torch.no_grad():
        para.predictor.proj.weight.zero_()
        p = (tokens - para.cfg.tail_threshold + 0.2) / frames
        para.predictor.proj.bias.fill_(math.log(p / (1 - p)))
    return frames


def funasr_rows(tokens: int, duration_s: float, beam_size: int, repeat: int, vocab: int, seed: int,
                refs: dict[str, float], audio: Path | None, int8: bool = False, bf16: bool = False,
                flops: bool = False, dw_striding: bool = False,
                ) -> tuple[list[list[object]], str, tuple[list[list[object]], list[list[object]]]]:
    num = int(duration_s * SAMPLE_RATE)
    pool, source = speech_pool(audio, num)
    one = windows(pool, 1, num)
    models = funasr_size_models(vocab, seed)
    para, aed = models["paraformer"], models["aed"]
    frames = fire_exactly(para, one, tokens)

    def aed_run(model, method: str, ctc_weight: float):
        def run():
            model.cfg.decode_ctc_weight = ctc_weight
            return model.recognize(*one, method, beam_size=beam_size, min_len=tokens, max_len=tokens)
        return run

    cands = {
        "Paraformer": lambda: para.recognize(*one),
        "AED greedy": aed_run(aed, "greedy", 0.0),
        f"AED beam {beam_size}": aed_run(aed, "beam", 0.0),
        f"AED beam {beam_size} + CTC prefix 0.3": aed_run(aed, "beam", 0.3),
    }
    fp32_rows = list(cands)  # these share the fp32 conv2d encoder: their decoder time is theirs minus its pass
    if int8:  # the same weights, int8 Linear layers (the CIF predictor, and so the token count, stays fp32)
        para_q, aed_q = quantize_int8(para), quantize_int8(aed)
        cands["Paraformer int8"] = lambda: para_q.recognize(*one)
        cands["AED greedy int8"] = aed_run(aed_q, "greedy", 0.0)
        cands[f"AED beam {beam_size} int8"] = aed_run(aed_q, "beam", 0.0)

    @torch.no_grad()
    def encoder_only():
        para.ctc(*one, head=False)

    cands[ENCODER] = encoder_only
    dw_name = "Paraformer, dw_striding x4"
    if dw_striding:  # speechseq's own subsampling in place of FunASR's conv2d; the rest of the network the same
        para_dw = funasr_size_models(vocab, seed, "dw_striding", ("paraformer",))["paraformer"]
        fire_exactly(para_dw, one, tokens)
        cands[dw_name] = lambda: para_dw.recognize(*one)
        if int8:
            para_dw_q = quantize_int8(para_dw)
            cands[f"{dw_name} int8"] = lambda: para_dw_q.recognize(*one)
    if bf16:  # the same weights under bf16 autocast, as load_asr(..., bf16=True) decodes
        cands["Paraformer bf16"] = under_bf16(lambda: para.recognize(*one))
        cands["AED greedy bf16"] = under_bf16(aed_run(aed, "greedy", 0.0))
        cands[f"AED beam {beam_size} bf16"] = under_bf16(aed_run(aed, "beam", 0.0))
    check = para.ctc(*one)
    alphas, _ = para._inference_alphas(check.hidden, check.lens)
    n_fired = int(torch.floor(alphas.sum() + 1e-4))
    timings = time_interleaved(cands, repeat=repeat, warmup=1)
    ref_of = {"Paraformer": refs["paraformer"], "AED greedy": refs["ar_greedy"], f"AED beam {beam_size}": refs["ar_beam"],
              f"AED beam {beam_size} + CTC prefix 0.3": refs["ar_beam"]}
    for suffix in ("int8", "bf16"):
        ref_of.update({f"{name} {suffix}": ref_of[name] for name in ("Paraformer", "AED greedy", f"AED beam {beam_size}")})
    ref_of.update({dw_name: refs["paraformer"], f"{dw_name} int8": refs["paraformer"]})
    para_t = timings["Paraformer"].median_s
    enc_t = timings.pop(ENCODER).median_s
    para_dec = para_t - enc_t if para_t > enc_t else float("nan")  # nan: within timing noise of the encoder pass
    rows = []
    for name, t in timings.items():
        model = (para_dw if name.startswith(dw_name) else para) if name.startswith("Paraformer") else aed
        rtf = t.median_s / duration_s
        dec_s = t.median_s - enc_t
        dec_cells = [dec_s / duration_s, dec_s / para_dec] if name in fp32_rows else ["-", "-"]
        rows.append([name, f"{count_params(model) / 1e6:.1f}M", rtf, t.min_s / duration_s, ref_of[name],
                     rtf / ref_of[name], t.median_s / para_t, *dec_cells])
    note = (f"{source}; {frames} encoder frames; Paraformer fired {n_fired} tokens, AED decoded {tokens}; "
            f"encoder pass (front end + encoder, no CTC head) RTF {enc_t / duration_s:.4f}")
    floor = flop_rows(para, one, duration_s, {r[0]: r[2] for r in rows}, bf16) if flops else ([], [])
    return rows, note, floor


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", default=[], metavar="NAME=DIR",
                   help="a trained model directory (repeat); names starting with 'aed' give the speed-up reference")
    p.add_argument("--manifest", help="test manifest for the trained models")
    p.add_argument("--max-utts", type=int, default=0, help="decode only the first N utterances (0 = all)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--beam-size", type=int, default=10)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--lm", help="token n-gram ARPA over the models' tokenizer (speechseq lm): adds a beam + LM row "
                                "per model")
    p.add_argument("--lm-weight", type=float, default=0.6)
    p.add_argument("--lm-bonus", type=float, default=1.5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--funasr-size", action="store_true", help="also time the FunASR-size configuration")
    p.add_argument("--tokens", type=int, default=40, help="tokens decoded in --funasr-size (10 s of Mandarin ~ 40)")
    p.add_argument("--duration-s", type=float, default=10.0)
    p.add_argument("--vocab", type=int, default=4234)
    p.add_argument("--audio", type=Path, help="speech to tile for --funasr-size (default: mfa_samples)")
    p.add_argument("--ref-paraformer", type=float, default=0.041)
    p.add_argument("--ref-ar-beam", type=float, default=0.79)
    p.add_argument("--ref-ar-greedy", type=float, default=0.10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--int8", action="store_true", help="also time every model with int8 dynamic-quantized Linear "
                                                       "layers (speechseq.infer.quantize; rows NAME@int8 / '... int8')")
    p.add_argument("--bf16", action="store_true", help="also time every model under bf16 autocast (rows NAME@bf16 / "
                                                       "'... bf16')")
    p.add_argument("--flops", action="store_true", help="with --funasr-size: count the Paraformer decode's FLOPs and "
                                                        "print the RTF floor of this machine's GEMM rate")
    p.add_argument("--dw-striding", action="store_true",
                   help="with --funasr-size: also time the Paraformer with speechseq's depthwise-separable x4 "
                        "subsampling (FastConformer style) in place of FunASR's conv2d, the rest the same")
    args = p.parse_args()
    if (args.flops or args.dw_striding) and not args.funasr_size:
        p.error("--flops and --dw-striding need --funasr-size")
    if not args.model and not args.funasr_size:
        p.error("give --model NAME=DIR (with --manifest) and/or --funasr-size")
    set_threads(args.threads)
    print_header("ASR decoders side by side (CTC, AED, Paraformer)",
                 {"batch_size": args.batch_size, "beam": args.beam_size, "repeat": args.repeat,
                  "manifest": args.manifest})
    if args.model:
        if not args.manifest:
            p.error("--model needs --manifest")
        models = [tuple(m.split("=", 1)) for m in args.model]
        rows, enc_rows, n, audio_s = trained_rows(models, args.manifest, args.beam_size, args.batch_size,
                                                  args.repeat, args.max_utts, args.lm, args.lm_weight, args.lm_bonus,
                                                  args.int8, args.bf16)
        print(f"\n## trained models: {n} utterances, {audio_s:.1f} s of audio\n")
        print(markdown_table(["model", "decoding", "params", "WER %", "CER %", "RTF", "x AED beam", "decoder RTF",
                              "decoder x AED beam"], rows, 4))
        print("\ndecoder RTF: the row's time minus its model's encoder pass (front end + encoder over the same "
              "batches, + the CTC head for CTC models):\n")
        print(markdown_table(["model", "encoder-pass RTF"], enc_rows, 4))
    if args.funasr_size:
        refs = {"paraformer": args.ref_paraformer, "ar_beam": args.ref_ar_beam, "ar_greedy": args.ref_ar_greedy}
        rows, note, (parts, floors) = funasr_rows(args.tokens, args.duration_s, args.beam_size, args.repeat,
                                                  args.vocab, args.seed, refs, args.audio, args.int8, args.bf16,
                                                  args.flops, args.dw_striding)
        print(f"\n## FunASR conformer-Paraformer size, random weights, {args.duration_s:.0f} s: {note}\n")
        print(markdown_table(["decoder", "params", "RTF", "RTF (fastest)", "FunASR RTF", "x FunASR", "x Paraformer",
                              "decoder RTF", "decoder x Paraformer"], rows, 4))
        print("\ndecoder RTF: the row's time minus the encoder pass (fp32 rows on the conv2d encoder only); AED beam "
              "+ CTC prefix also reads the CTC head, which the encoder pass skips (~3% of the pass)")
        if args.flops:
            print("\nParaformer decode, floating-point operations by part (FlopCounterMode: matmuls and convolutions; "
                  "the encoder includes its subsampling):\n")
            print(markdown_table(["part", "GFLOP", "% of total"], parts, 2))
            print("\nRTF floor = GFLOP / GEMM rate / duration (torch.mm, best of 5):\n")
            print(markdown_table(["precision", "GEMM", "GEMM GFLOP/s", "floor RTF", "measured RTF", "measured / floor"],
                                 floors, 4))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
