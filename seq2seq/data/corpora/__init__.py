"""Corpora: readers, TFDS builders and train/dev/test splits.

Importing this package does not import TensorFlow; ``tfds_builders`` does, and is only
loaded when a TFDS-backed corpus is requested. ``load_splits`` (docs/corpora.md) is
importable from the package; the rest from the module that defines it (the errors from
``spec``, ``LineReport`` from ``readers``).
"""

from seq2seq.data.corpora.loading import Pair, load_splits, split_summary

__all__ = ["Pair", "load_splits", "split_summary"]
