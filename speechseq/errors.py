"""Error types that name the file, line or key at fault.

Every user-facing failure in speechseq is raised as one of these (all are ``ValueError`` subclasses), so a bad input
gives a message such as ``data/train.jsonl:17: missing field 'text'`` instead of a traceback deep inside torch.
"""


class SpeechseqError(ValueError):
    """Base class of speechseq's input errors."""


class ConfigError(SpeechseqError):
    """An unknown key, a wrong type or an unreadable YAML file in a config."""


class AudioError(SpeechseqError):
    """A missing, unreadable, empty or non-finite audio file (the message names the file)."""


class ManifestError(SpeechseqError):
    """A manifest or Kaldi data directory line that is malformed (the message names file and line)."""
