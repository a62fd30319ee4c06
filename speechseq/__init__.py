"""speechseq: speech and audio sequence models in plain PyTorch.

Importing the package builds and registers nothing. The public inference entry point is
:func:`speechseq.load_asr` (imported lazily so that ``import speechseq`` stays cheap).
"""

__version__ = "0.1.0"


def load_asr(model_dir: str, device: str = "cpu", int8: bool = False, bf16: bool = False):
    """Load a trained ASR model directory; see :func:`speechseq.infer.recognizer.load_asr`."""
    from speechseq.infer.recognizer import load_asr as _load_asr

    return _load_asr(model_dir, device=device, int8=int8, bf16=bf16)
