"""How many names and numbers a translation carries through unchanged.

A *term* of a pair is a word of the source that its reference keeps as it is and that is a
number or a name: it holds a digit ("2019", "IB3172"; "14:45" is the two terms "14" and
"45") or starts with a capital letter ("Xóchitl", "Tlaxcala"). A term is *carried* when the
hypothesis has it as a whole word, with the same case. Words are Unicode ``\\w+`` runs, so
accents count and punctuation does not.

No TensorFlow; ``carry_report`` is what ``python -m seq2seq.evaluate`` prints as
"names and numbers carried". The fixed set that measures it on unseen names is
``data/names-numbers/es-en.tsv`` (``scripts/names_numbers_set.py``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

WORD = re.compile(r"\w+")
SHOWN_MISSES = 5


def words(text: str) -> list[str]:
    return WORD.findall(text)


def is_term(word: str) -> bool:
    return any(c.isdigit() for c in word) or word[:1].isupper()


def terms(source: str, reference: str) -> list[str]:
    """The names and numbers of ``source`` that ``reference`` keeps unchanged, in source
    order (a term written twice counts twice when the reference has it twice)."""
    kept = words(reference)
    found = []
    for word in words(source):
        if is_term(word) and kept.count(word) > found.count(word):
            found.append(word)
    return found


def missing(source: str, reference: str, hypothesis: str) -> list[str]:
    """The terms of the pair that ``hypothesis`` lacks (as many times as it lacks them)."""
    produced = words(hypothesis)
    lost = []
    for term in terms(source, reference):
        if produced.count(term) > 0:
            produced.remove(term)
        else:
            lost.append(term)
    return lost


def carry_report(
    sources: Sequence[str], references: Sequence[str], hypotheses: Sequence[str]
) -> dict[str, Any]:
    """``terms``, ``carried``, ``carry_rate`` (None without terms), ``sentences_with_terms``
    and a few ``misses`` ({source, hypothesis, missing}) to look at."""
    total = carried = with_terms = 0
    misses = []
    for source, reference, hypothesis in zip(sources, references, hypotheses, strict=True):
        count = len(terms(source, reference))
        if not count:
            continue
        with_terms += 1
        lost = missing(source, reference, hypothesis)
        total += count
        carried += count - len(lost)
        if lost and len(misses) < SHOWN_MISSES:
            misses.append({"source": source, "hypothesis": hypothesis, "missing": lost})
    return {
        "terms": total,
        "carried": carried,
        "carry_rate": carried / total if total else None,
        "sentences_with_terms": with_terms,
        "misses": misses,
    }
