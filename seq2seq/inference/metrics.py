"""Corpus metrics for generated replies: BLEU-1/2, distinct-n, reply length and a
degenerate check.

No TensorFlow. Distinct-n and lengths count whitespace-separated words, as written.

BLEU-1/2 and distinct-1/2 are computed the way PLATO's evaluation computed the row that
docs/results.md compares with (Bao et al., 2020; the Seq2Seq baseline on DailyDialog), so the
numbers are comparable: texts are lower-cased and split into words with punctuation apart
(``metric_words``: sacrebleu's ``13a`` tokeniser, as mteval-v13a); BLEU-n is NLTK's
per-sentence ``sentence_bleu`` against the one reference, weights 1/n for the 1..n-grams
and 0 for the other orders up to 4 (PLATO's ``[1, 0, 0, 0]`` and ``[0.5, 0.5, 0, 0]``),
``SmoothingFunction().method7`` (Chen and Cherry 2014, methods 4 + 5), 0 for an empty
reply, averaged over the replies (0..1); distinct-n is over all replies together (unique /
total n-grams).

Method 7's result depends on the NLTK version, because its method 4 changed twice, so
there are two named BLEU-n protocols (``BLEU_PROTOCOLS``):

- ``"plato"``: NLTK 3.4, the version PLATO's ``requirement.txt`` pins. Its method 4 gives
  an n-gram order with no match the precision 1 / (i + 5 / ln L) (i: the order counted
  from 0, L: the reply's length), so a 10-word reply with no matching bigram still gets a
  bigram precision of 0.32. A one-word reply then divides by ln 1 = 0; PLATO's code
  catches that and scores 0, and so does this one.
- ``"nltk"``: the NLTK installed here (3.6 and later), whose method 4 gives that order
  1 / (2^k * 5 / ln L) of a match (k = 1, 2, ... over the unmatched orders): 0.03 for the
  same reply.

The ``"plato"`` protocol rewards long replies much more, which is why the published row's
BLEU-2 is 0.80 of its BLEU-1. Both are far above sacrebleu's corpus BLEU: compare only
numbers computed the same way.

The degenerate-model check answers "does the model give (nearly) the same answer to
everything?", the usual failure of a chat model trained with maximum likelihood:

    degenerate_share = share of the distinct inputs whose reply is a *stock reply*,
    a stock reply being one given to at least max(2, ceil(stock_fraction * D)) of the
    D distinct inputs (stock_fraction = 0.02 by default).

Each distinct input counts once (with its first reply), and replies are compared after
lower-casing and collapsing whitespace. One answer for every input gives 1.0; a model
that answers every input differently gives 0.0; a model with a handful of generic
answers ("I don't know.", "Yes.") that cover half the inputs gives about 0.5. Above
``degenerate_threshold`` (0.2 by default) the result carries a warning.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

DEFAULT_STOCK_FRACTION = 0.02
DEFAULT_DEGENERATE_THRESHOLD = 0.2
SHOWN_STOCK_REPLIES = 5


BLEU_PROTOCOLS = {
    "plato": (
        "per-sentence BLEU-n as PLATO's evaluation computed it: NLTK 3.4 sentence_bleu "
        "(the version PLATO pins), weights 1/n on the 1..n-grams and 0 on the rest up to 4, "
        "SmoothingFunction().method7, lower-cased 13a words, 0 when NLTK 3.4 fails (one-word "
        "replies), 0..1, mean over replies"
    ),
    "nltk": (
        "the same with the installed NLTK's method7, whose method 4 (fixed in NLTK 3.6) "
        "smooths unmatched orders far less"
    ),
}


def nltk34_method7(p_n, references, hypothesis, hyp_len=None, *args, **kwargs):
    """NLTK's ``method7`` smoothing as NLTK 3.4 computed it, with the same signature:
    method 4 of that version (see the module docstring), then the unchanged method 5."""
    from nltk.translate.bleu_score import SmoothingFunction

    smoothing = SmoothingFunction()
    hyp_len = hyp_len or len(hypothesis)
    for order, precision in enumerate(p_n):
        if precision.numerator == 0 and hyp_len != 0:
            p_n[order] = 1 / (order + smoothing.k / math.log(hyp_len))
    return smoothing.method5(p_n, references, hypothesis, hyp_len)


def metric_words(text: str) -> list[str]:
    """The words BLEU-n and distinct-n count: lower-cased, punctuation split off (13a)."""
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    return Tokenizer13a()(text.lower()).split()


def sentence_bleu_n(
    hypotheses: Sequence[str], references: Sequence[str], n: int, protocol: str = "plato"
) -> float:
    """Mean per-sentence BLEU-n of ``hypotheses`` against one reference each (0..1), under
    one of ``BLEU_PROTOCOLS`` (defined in the module docstring). 0.0 for no pairs.

    >>> round(sentence_bleu_n(["The cat sat."], ["the cat sat down."], 1), 4)
    0.9519
    >>> round(sentence_bleu_n(["The cat sat."], ["the cat sat down."], 2), 4)
    0.7683
    """
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if protocol not in BLEU_PROTOCOLS:
        raise ValueError(f"unknown BLEU-n protocol {protocol!r}; one of {list(BLEU_PROTOCOLS)}")
    if not hypotheses:
        return 0.0
    # Four weights, zeros after n, exactly as PLATO passed them: method7's averaging over
    # neighbouring orders reads the zero-weighted orders too, so (1,) would differ.
    weights = tuple(1.0 / n if order < n else 0.0 for order in range(max(4, n)))
    smoothing = nltk34_method7 if protocol == "plato" else SmoothingFunction().method7
    scores = []
    for hypothesis, reference in zip(hypotheses, references, strict=True):
        words = metric_words(hypothesis)
        if not words:
            scores.append(0.0)
            continue
        try:
            score = sentence_bleu([metric_words(reference)], words, weights, smoothing)
        except ZeroDivisionError:  # NLTK 3.4's method 4 on a one-word reply
            score = 0.0
        scores.append(float(score))
    return sum(scores) / len(scores)


def ngrams(words: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct-n (Li et al., 2016): unique n-grams / total n-grams over all ``texts``.

    N-grams do not cross text boundaries; 0.0 when there are no n-grams at all.

    >>> distinct_n(["a b a", "a b"], 1)  # unigrams a b a a b: 2 unique of 5
    0.4
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    counts: Counter[tuple[str, ...]] = Counter()
    for text in texts:
        counts.update(ngrams(text.split(), n))
    total = sum(counts.values())
    return len(counts) / total if total else 0.0


def average_words(texts: Sequence[str]) -> float:
    """Mean number of whitespace-separated words per text (0.0 for no texts)."""
    return sum(len(text.split()) for text in texts) / len(texts) if texts else 0.0


def reply_key(text: str) -> str:
    """How replies are compared by the degenerate check: lower case, single spaces."""
    return " ".join(text.lower().split())


def degenerate_report(
    inputs: Sequence[str],
    replies: Sequence[str],
    stock_fraction: float = DEFAULT_STOCK_FRACTION,
) -> dict[str, Any]:
    """``degenerate_share`` (see the module docstring) and the stock replies behind it."""
    if len(inputs) != len(replies):
        raise ValueError(f"{len(inputs)} inputs but {len(replies)} replies")
    first: dict[str, str] = {}
    for source, reply in zip(inputs, replies, strict=True):
        first.setdefault(" ".join(source.split()), reply)
    distinct_inputs = len(first)
    counts = Counter(reply_key(reply) for reply in first.values())
    minimum = max(2, math.ceil(stock_fraction * distinct_inputs))
    stock = {key: count for key, count in counts.items() if count >= minimum}
    covered = sum(stock.values())
    shown = sorted(stock.items(), key=lambda item: (-item[1], item[0]))[:SHOWN_STOCK_REPLIES]
    return {
        "distinct_inputs": distinct_inputs,
        "distinct_replies": len(counts),
        "distinct_reply_ratio": len(counts) / distinct_inputs if distinct_inputs else 0.0,
        "stock_reply_min_inputs": minimum,
        "degenerate_share": covered / distinct_inputs if distinct_inputs else 0.0,
        "stock_replies": [
            {"reply": key, "inputs": count, "share": count / distinct_inputs}
            for key, count in shown
        ],
    }


def dialogue_metrics(
    inputs: Sequence[str],
    replies: Sequence[str],
    *,
    stock_fraction: float = DEFAULT_STOCK_FRACTION,
    degenerate_threshold: float = DEFAULT_DEGENERATE_THRESHOLD,
) -> dict[str, Any]:
    """Diversity metrics of ``replies`` (one per input, same order).

    Returns ``distinct_1``, ``distinct_2``, ``avg_reply_words``, ``replies``, the
    degenerate check (``degenerate_share``, ``distinct_inputs``, ``distinct_replies``,
    ``distinct_reply_ratio``, ``stock_replies``, ``stock_reply_min_inputs``),
    ``degenerate_threshold`` and ``warning`` (a message when ``degenerate_share`` is above
    the threshold, else ``None``).
    """
    words = [" ".join(metric_words(reply)) for reply in replies]
    result: dict[str, Any] = {
        "replies": len(replies),
        "distinct_1": distinct_n(words, 1),
        "distinct_2": distinct_n(words, 2),
        "avg_reply_words": average_words(replies),
    }
    result.update(degenerate_report(inputs, replies, stock_fraction))
    result["degenerate_threshold"] = degenerate_threshold
    result["warning"] = None
    if result["degenerate_share"] > degenerate_threshold:
        examples = ", ".join(
            f"{item['reply']!r} ({item['inputs']} inputs)" for item in result["stock_replies"][:3]
        )
        result["warning"] = (
            f"degenerate replies: {result['degenerate_share']:.0%} of "
            f"{result['distinct_inputs']} distinct inputs got a stock reply "
            f"(one given to >= {result['stock_reply_min_inputs']} inputs), above the "
            f"threshold {degenerate_threshold:.0%}; most common: {examples}. The model "
            "may be undertrained or collapsing to generic answers; try sampling "
            "(--method sample) or more training."
        )
    return result
