"""Glossaries: a TSV file of ``source term<TAB>target term`` lines, read and checked, and
the constraints it puts on each sentence's translation.

``read_glossary(path)`` (``--glossary FILE``) and ``parse_glossary(text, name)`` (the app's
text box) give a ``Glossary`` or raise ``GlossaryError`` with one line naming the file
and line: a line without exactly one tab, an empty term, undecodable bytes, or a source
term given twice with different targets (the same pair twice is accepted). Blank lines
are skipped. ``Glossary.with_vocabulary(target_tokenizer)`` encodes every target term
with the run's target tokenizer (alone, so a SentencePiece term starts with its
word-initial piece, as it does after a space inside a sentence) and refuses a term the
vocabulary cannot spell (a piece encodes to ``<unk>``, or nothing is left).

``Glossary.constraints(text)``: the target terms, as id lists, of the source terms that
occur in ``text``: whole words (not inside a longer word), case-insensitive, after the
same normalisation as the model's input (NFKC, spaces collapsed). Terms are matched
longest first without overlapping, so "Nueva York" does not also match a term "York";
a term occurring twice gives one constraint. Beam search then puts every constraint in
its output (``seq2seq.search.constrained``). This module imports no TensorFlow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from seq2seq.constants import SPECIAL_PIECES, UNK

WORD_START = "\u2581"  # SentencePiece's mark of a piece that starts a word

SEARCH_NEEDED = (
    "a glossary constrains beam search only; use --method beam (or --beam N), "
    "greedy search and sampling cannot be constrained"
)


class GlossaryError(ValueError):
    """A glossary cannot be used: the one-line message names the file and the line."""


def check_method(name: str, method: str) -> None:
    """``GlossaryError`` unless ``method`` is beam search: greedy search and sampling pick
    one token per step and cannot be steered to a term, so a glossary is refused there
    rather than ignored."""
    if method != "beam":
        raise GlossaryError(f"{name}: {SEARCH_NEEDED} (the search is {method})")


@dataclass(frozen=True)
class Term:
    """One glossary line: the source term, the target term, and where it was read."""

    source: str
    target: str
    line: int


@dataclass(frozen=True)
class Glossary:
    """Source terms -> target terms; ``ids`` (target term -> ids) once ``with_vocabulary``."""

    name: str
    terms: tuple[Term, ...]
    ids: dict[str, tuple[int, ...]] = field(default_factory=dict, compare=False)

    def __len__(self) -> int:
        return len(self.terms)

    def __post_init__(self) -> None:
        by_key = {_key(term.source): term for term in self.terms}
        object.__setattr__(self, "_by_key", by_key)
        alternatives = sorted(by_key, key=len, reverse=True)
        pattern = None
        if alternatives:
            body = "|".join(re.escape(key) for key in alternatives)
            pattern = re.compile(rf"(?<!\w)(?:{body})(?!\w)")
        object.__setattr__(self, "_pattern", pattern)

    def matches(self, text: str) -> list[Term]:
        """The terms whose source term occurs in ``text`` (whole words, any case), once
        each, in order of first occurrence."""
        pattern = self._pattern  # type: ignore[attr-defined]
        if pattern is None:
            return []
        found: dict[str, Term] = {}
        for match in pattern.finditer(_key(text)):
            term = self._by_key[match.group(0)]  # type: ignore[attr-defined]
            found.setdefault(term.source, term)
        return list(found.values())

    def with_vocabulary(self, tokenizer: Any) -> Glossary:
        """This glossary with every target term encoded by ``tokenizer`` (the run's target
        tokenizer); ``GlossaryError`` names the first term it cannot spell."""
        targets = list(dict.fromkeys(term.target for term in self.terms))
        batch = getattr(tokenizer, "encode_batch", None)  # one call for a large glossary
        spelled = batch(targets) if batch else [tokenizer.encode(t) for t in targets]
        by_target = dict(zip(targets, spelled, strict=True))
        ids: dict[str, tuple[int, ...]] = {}
        for term in self.terms:
            if term.target in ids:
                continue
            encoded = tuple(int(i) for i in by_target[term.target])
            if not encoded or UNK in encoded:
                pieces = tokenizer.pieces(term.target)
                unknown = [p for p, i in zip(pieces, encoded, strict=False) if i == UNK]
                why = (
                    f"the piece(s) {', '.join(repr(p) for p in unknown)} are not in it"
                    if unknown
                    else "it encodes to <unk>"
                    if encoded
                    else "nothing of it is left after tokenisation"
                )
                raise GlossaryError(
                    f"{self.name}:{term.line}: the target term {term.target!r} cannot be "
                    f"spelled by the run's target vocabulary ({why}); use another spelling "
                    "or a run whose vocabulary has it"
                )
            ids[term.target] = encoded
        return replace(self, ids=ids)

    def constraints(self, text: str) -> list[list[int]]:
        """Id lists of the target terms whose source term occurs in ``text``."""
        if self.terms and not self.ids:
            raise ValueError("call with_vocabulary(target_tokenizer) before constraints()")
        return [list(self.ids[term.target]) for term in self.matches(text)]


def has_term(text: str, term: str) -> bool:
    """Whether ``term`` is in ``text`` as whole words, any case (how hits are counted)."""
    return re.search(rf"(?<!\w){re.escape(_key(term))}(?!\w)", _key(text)) is not None


def hit_report(glossary: Glossary, sources: list[str], outputs: list[str]) -> dict[str, Any]:
    """How many sentences hold a source term, how many terms that makes, and the share
    of those target terms present in the outputs (whole words, any case)."""
    terms = [(i, term.target) for i, s in enumerate(sources) for term in glossary.matches(s)]
    hits = sum(has_term(outputs[i], target) for i, target in terms)
    return {
        "file": glossary.name,
        "terms": len(glossary),
        "sentences": len({i for i, _ in terms}),
        "constraints": len(terms),
        "hits": hits,
        "hit_rate": hits / len(terms) if terms else None,
    }


def word_continuations(tokenizer: Any) -> np.ndarray:
    """[V] bool: the target pieces that would glue onto the word before them (SentencePiece
    pieces without the word-start mark that begin with a letter or digit). Constrained
    beam search bans them right after a term, so a term stays a whole word ("physician",
    not "physiciand"); punctuation ("." or "'s") may follow. A word tokenizer has none."""
    glue = np.zeros(tokenizer.vocab_size, bool)
    if getattr(tokenizer, "kind", None) != "sentencepiece":
        return glue
    for i in range(len(SPECIAL_PIECES), tokenizer.vocab_size):
        piece = tokenizer.id_to_piece(i)
        glue[i] = not piece.startswith(WORD_START) and piece[:1].isalnum()
    return glue


def _key(text: str) -> str:
    """What terms are matched on: the model's input normalisation, case-folded."""
    from seq2seq.data.tokenizers import normalize  # imports no TensorFlow at module level

    return normalize(text).casefold()


def parse_glossary(text: str | bytes, name: str = "glossary") -> Glossary:
    """A glossary from its text (``source<TAB>target`` lines); ``GlossaryError`` names
    ``name`` and the line of the first problem."""
    raw_lines = text.split(b"\n") if isinstance(text, bytes) else text.split("\n")
    terms: list[Term] = []
    by_key: dict[str, Term] = {}
    for number, raw in enumerate(raw_lines, start=1):
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as error:
                raise GlossaryError(
                    f"{name}:{number}: not UTF-8 (byte {error.start + 1} of the line); "
                    "save the glossary as UTF-8"
                ) from None
        elif number == 1:
            raw = raw.removeprefix("\ufeff")
        line = raw.removesuffix("\r")
        if not line.strip():
            continue
        tabs = line.count("\t")
        if tabs != 1:
            raise GlossaryError(
                f"{name}:{number}: expected source term<TAB>target term (one tab), found "
                f"{tabs} tabs in {_shown(line)}"
            )
        source, target = (" ".join(part.split()) for part in line.split("\t"))
        for side, value in (("source", source), ("target", target)):
            if not value:
                raise GlossaryError(f"{name}:{number}: the {side} term is empty")
        key = _key(source)
        if not key:
            raise GlossaryError(f"{name}:{number}: the source term is empty once normalised")
        earlier = by_key.get(key)
        if earlier is not None:
            if earlier.target != target:
                raise GlossaryError(
                    f"{name}:{number}: the source term {source!r} is already given on line "
                    f"{earlier.line} with another target ({earlier.target!r} vs {target!r}); "
                    "keep one"
                )
            continue
        term = Term(source, target, number)
        by_key[key] = term
        terms.append(term)
    return Glossary(name, tuple(terms))


def read_glossary(path: str | Path) -> Glossary:
    """The glossary in ``path``; ``GlossaryError`` if it cannot be read or is malformed."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise GlossaryError(f"{path}: is a folder, not a glossary file") from None
    except OSError as error:
        raise GlossaryError(f"{path}: cannot be read ({error.strerror or error})") from None
    return parse_glossary(data, str(path))


def _shown(line: str, limit: int = 60) -> str:
    shown = line if len(line) <= limit else line[: limit - 1] + "…"
    return repr(shown)
