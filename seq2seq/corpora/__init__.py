"""Corpora: readers, TFDS builders and train/dev/test splits.

Importing this package does not import TensorFlow; ``tfds_builders`` does, and is only
loaded when a TFDS-backed corpus is requested.
"""

from seq2seq.corpora.errors import CorpusError, CorpusNotFoundError
from seq2seq.corpora.loading import Pair, load_splits, split_summary
from seq2seq.corpora.readers import LineReport

__all__ = [
    "CorpusError",
    "CorpusNotFoundError",
    "LineReport",
    "Pair",
    "load_splits",
    "split_summary",
]
