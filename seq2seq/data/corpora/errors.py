"""Errors raised while finding and reading corpora.

Both derive from ``ValueError`` so callers that validate input can catch them
uniformly; the messages are written for the person running the command.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

DATA_DIR_ENV = "SEQ2SEQ_DATA_DIR"
CACHE_DIR_ENV = "SEQ2SEQ_CACHE_DIR"
DEFAULT_CACHE_DIR = Path("~/.cache/seq2seq/tfds")


def resolve_cache_dir(cache_dir: str | Path | None) -> Path:
    """TFDS's prepared-data folder: argument, else $SEQ2SEQ_CACHE_DIR, else
    ~/.cache/seq2seq/tfds (prepared token-id shards are cached in its ``prepared/``)."""
    chosen = cache_dir or os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR
    return Path(chosen).expanduser()


class CorpusError(ValueError):
    """A corpus file has bad content (the message names the file and line)."""


class CorpusNotFoundError(CorpusError):
    """A corpus is neither on disk nor downloadable; says where we looked."""

    def __init__(self, corpus: str, looked_in: Iterable[str | Path], url: str | None = None):
        places = "\n".join(f"  - {place}" for place in looked_in) or "  - (no folder given)"
        how = f"With internet access it is downloaded automatically from {url}; " if url else ""
        message = (
            f"corpus {corpus!r} not found. Looked in:\n{places}\n"
            f"Point the config field data.data_dir or the environment variable {DATA_DIR_ENV} "
            "at a folder laid out like shared/data (translation/, dialogue/cornell/, "
            f"dialogue/dailydialog/). {how}or download it by hand and place it there."
        )
        super().__init__(message)
        self.corpus = corpus
        self.looked_in = [str(place) for place in looked_in]
        self.url = url
