"""Command-line entry points: each ``speechseq/bin/<name>.py`` is a ``main(argv) -> int`` over a library function.

    python -m speechseq.bin.decode --model-dir exp/ctc_tiny --manifest data/test.jsonl --out exp/ctc_tiny/decode

:func:`run` is the shared ``__main__`` wrapper: a bad input (any :class:`~speechseq.errors.SpeechseqError`) becomes
one ``error: <message>`` line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import sys
from typing import Callable

from speechseq.errors import SpeechseqError

EXIT_BAD_INPUT = 2


def run(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Call ``main(argv)`` and turn a :class:`SpeechseqError` into a one-line message.

    Args:
        main: a command's ``main(argv) -> exit status``.
        argv: arguments without the program name; None lets ``main`` read ``sys.argv[1:]``.

    Returns:
        ``main``'s exit status, or 2 after printing ``error: <message>`` to stderr when it raised a
        SpeechseqError (bad config, manifest or audio; the message names the file, line or key).
    """
    try:
        return main(argv)
    except SpeechseqError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
