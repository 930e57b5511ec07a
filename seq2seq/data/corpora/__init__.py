"""Corpora: readers, TFDS builders and train/dev/test splits.

Importing this package does not import TensorFlow; ``tfds_builders`` does, and is only
loaded when a TFDS-backed corpus is requested.
"""

from seq2seq.data.corpora.errors import CorpusError, CorpusNotFoundError
from seq2seq.data.corpora.loading import Pair, load_splits, split_summary
from seq2seq.data.corpora.readers import LineReport

__all__ = [
    "CorpusError",
    "CorpusNotFoundError",
    "LineReport",
    "Pair",
    "load_splits",
    "split_summary",
]
