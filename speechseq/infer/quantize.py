"""Int8 dynamic quantization of a trained ASR model for CPU decoding.

Every ``nn.Linear`` of the model (the conformer's feed-forward and attention projections, the decoders, the output
heads) gets int8 weights, one scale per output channel, and its input is quantized per batch at run time
(PyTorch's eager dynamic quantization, fbgemm/x86 kernels). Left in fp32: the convolutions (subsampling, the
conformer's conv module), the norms, and the Paraformer CIF predictor, whose weights decide how many tokens fire
and are kept in fp32 as in training. The model must then decode on the CPU.

Why PyTorch's ``torch.ao.quantization.quantize_dynamic`` and not torchao or ONNX Runtime: on this 2-core CPU it made
the 46M FunASR-size Paraformer 1.64x faster end to end (docs/benchmarks.md) where torchao's int8 dynamic config
gave ~1.15x in an ad-hoc probe, and it needs no export step. PyTorch marks ``torch.ao.quantization`` deprecated; its notice is silenced here, and if a later
PyTorch drops the function, :func:`quantize_int8` says so instead of failing deep inside.

Only offline decoding (the models' ``recognize``) is covered: the attention's streaming-cache path reads the fp32
weight matrix directly.
"""

from __future__ import annotations

import warnings

from torch import nn

from speechseq.errors import SpeechseqError

FP32_MODULES = ("predictor",)
"""Submodules (by name prefix) whose Linear layers stay fp32."""


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (on the CPU, in eval mode) with int8 dynamic-quantized Linear layers."""
    try:
        import torch
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
    except ImportError as e:  # pragma: no cover - depends on the installed PyTorch
        raise SpeechseqError(f"int8 quantization needs torch.ao.quantization.quantize_dynamic, which this PyTorch "
                             f"({torch.__version__}) lacks: decode in fp32") from e
    if any(p.device.type != "cpu" for p in model.parameters()):
        raise SpeechseqError("int8 dynamic quantization runs on the CPU only: load the model with device='cpu'")
    names = {name: per_channel_dynamic_qconfig for name, module in model.named_modules()
             if isinstance(module, nn.Linear) and not name.startswith(FP32_MODULES)}
    if not names:
        raise SpeechseqError(f"{type(model).__name__} has no Linear layer to quantize")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated")
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation functions")
        return quantize_dynamic(model.eval(), names, dtype=torch.qint8, inplace=False)
