"""Copying names and numbers by constrained beam search (``decode.copy_names``).

A copy model (``model.copy_attention``) can write any piece of its source, but it still
drops or respells names it has never seen. An input's *copy terms* (``CopyNames.terms``):

- every run of digits ("2017"; "14:45" gives "14" and "45"; "3,5" gives "3" and "5", so
  "3.5" holds them);
- every word that holds a digit and a letter ("IB3172");
- every word that starts with a capital letter and that the training sources never hold
  in any case (``source_words.txt``, ``seq2seq.data.source_words``): "Citlali" and
  "Jyväskylä" are copy terms; "España", "Tom" or a capitalised first word ("Compramos")
  are known, and left to the model.

The translator searches as usual first; an input whose output lacks some of its copy
terms (as whole words, same case: ``missing``) is searched again with the missing terms as
constraints of beam search (``seq2seq.search.constrained``, the glossary's machinery), and
if that output lacks a term still, a third time with all its copy terms, each time with a
beam wide enough to give each constraint token its bank. So an output the model got right
is never touched, and only the inputs it got wrong pay for more searches. Terms the
target vocabulary cannot spell (a piece would be ``<unk>``) are left to the model. No
TensorFlow.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from seq2seq.config import DataConfig
from seq2seq.constants import UNK
from seq2seq.data.prepared import PreparedDataError, cache_folder, open_prepared
from seq2seq.data.source_words import (
    WORD,
    SourceWordsError,
    read_source_words,
    training_source_words,
    write_source_words,
)
from seq2seq.data.tokenizers import load_tokenizer, normalize
from seq2seq.runs import RunError, RunPaths

log = logging.getLogger(__name__)
DIGITS = re.compile(r"\d+")
TIME = re.compile(r"\d{1,2}(?::\d\d)+")  # 14:45, 9:05:30: the same in every language
EDGE_PUNCTUATION = ".,;!?¡¿()[]«»\"'"
WORD_START = "\u2581"


@dataclass(frozen=True)
class CopyNames:
    """Which words of a source must be copied, and their constraints as target ids."""

    known_words: frozenset[str]
    target_tokenizer: Any

    def terms(self, text: str) -> list[str]:
        """The copy terms of ``text``, once each, in order: a time ("14:45") is one term;
        other numbers give their digit runs ("3,5" gives "3" and "5": separators differ
        between languages)."""
        found: dict[str, None] = {}
        source = normalize(text)
        for chunk in source.split():
            if TIME.fullmatch(chunk.strip(EDGE_PUNCTUATION)):
                found[chunk.strip(EDGE_PUNCTUATION)] = None
                continue
            for word in WORD.findall(chunk):
                if any(c.isdigit() for c in word):
                    if word.isdigit() or not any(c.isalpha() for c in word):
                        found.update(dict.fromkeys(DIGITS.findall(word)))
                    else:
                        found[word] = None
                elif word[:1].isupper() and word.casefold() not in self.known_words:
                    found[word] = None
        return list(found)

    def missing(self, text: str, output: str) -> list[str]:
        """The copy terms of ``text`` that ``output`` lacks as whole words (same case)."""
        output = normalize(output)
        return [term for term in self.terms(text) if not _has_word(output, term)]

    def constraints(self, text: str, terms: list[str] | None = None) -> list[list[int]]:
        """Id lists of ``terms`` (default: all copy terms of ``text``) that the target
        vocabulary can spell, as whole words; a digit run that does not start a word of
        ``text`` ("45" in "14:45") without the word-start piece, so it may follow ":"."""
        found = []
        source = normalize(text)
        for term in self.terms(text) if terms is None else terms:
            ids = list(self.target_tokenizer.encode(term))
            inside = term.isdigit() and not re.search(rf"(?<!\S){term}", source)
            if inside and self.target_tokenizer.pieces(term)[:1] == [WORD_START]:
                ids = ids[1:]  # the lone word-start piece
            if ids and UNK not in ids:
                found.append(ids)
        return found


def _has_word(text: str, term: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(term)}(?!\w)", text) is not None


def merge_constraints(*lists: list[list[int]] | None) -> list[list[int]]:
    """Constraint lists joined, each id list once (a glossary term that is also a name)."""
    merged: dict[tuple[int, ...], None] = {}
    for constraints in lists:
        for ids in constraints or []:
            merged.setdefault(tuple(ids), None)
    return [list(ids) for ids in merged]


def known_source_words(paths: RunPaths, data: DataConfig) -> frozenset[str]:
    """The run's ``source_words.txt``; for a run trained before runs recorded it, the words
    of its prepared training data (``data.prepared``, else the cache folder of its data
    config), written into the run when the folder allows. ``RunError`` when neither
    exists, saying how to make the prepared data."""
    if paths.source_words.is_file():
        try:
            return read_source_words(paths.source_words)
        except (OSError, SourceWordsError) as error:
            raise RunError(
                f"{paths.root}: cannot read {paths.source_words.name}: {error}"
            ) from None
    root = data.prepared or cache_folder(data)
    try:
        folder = open_prepared(root, data, checksums=False)
    except PreparedDataError:
        raise RunError(
            f"{paths.root} has no {paths.source_words.name} (runs record it since copy_names "
            "came), and its prepared data is not on this machine: prepare it with `python -m "
            f"seq2seq.prepare --config {paths.config}` and try again"
        ) from None
    words = training_source_words(folder.files("train"), load_tokenizer(folder.source_vocab))
    log.info("%s: the training sources' words read from %s", paths.root, folder.root)
    try:
        write_source_words(paths.source_words, words)
    except OSError:
        pass  # a read-only run folder: the words are read again next time
    return frozenset(words)
