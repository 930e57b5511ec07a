"""Mutual-information reranking of reply candidates (Li et al., NAACL 2016, MMI-bidi).

A forward chat model p(reply | message) prefers safe, generic replies ("i don't know.").
MMI-bidi keeps its n-best list (beam search's ``mmi_candidates`` beams, or that many
samples) and reorders it by

    score(reply) = log p(reply | message) + mmi_lambda * log p(message | reply)
                   + mmi_gamma * length(reply)

where both log-probabilities are *summed* token log-probabilities (END included, not
length-normalised) from teacher-forced passes of ``seq2seq.inference.prediction.SequenceScorer``:
the forward one with the chat run itself, the backward one with a run trained on the same
dialogues with the sides swapped (preset ``chat-backward``: ``data.reverse: true``, no
context), and ``length`` counts the reply's target tokens (END excluded). A reply that
answers *this* message makes the message likely; a generic reply does not.

The backward run is found beside the chat run as ``RUN-backward`` (``backward_run``)
unless given explicitly; ``check_backward`` refuses a run that is not a backward
dialogue model of the same corpus. This module imports NumPy and TensorFlow only when
scoring, so that the chat CLI reads it before any library starts threads (see
``seq2seq.chat.CtrlC``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seq2seq.config import Config, ConfigError, DecodeConfig, load_run_config
from seq2seq.constants import UNK
from seq2seq.data.corpora.spec import is_dialogue
from seq2seq.runs import RunError, open_run

if TYPE_CHECKING:
    import numpy as np

BACKWARD_SUFFIX = "-backward"
TRAIN_BACKWARD = "python -m seq2seq.train --preset chat-backward --output {run}-backward"


def mmi_scores(
    forward: Sequence[float],
    backward: Sequence[float],
    lengths: Sequence[int],
    mmi_lambda: float,
    mmi_gamma: float,
) -> np.ndarray:
    """``forward + mmi_lambda * backward + mmi_gamma * lengths``, elementwise (float64).

    >>> mmi_scores([-2.0, -1.0], [-3.0, -9.0], [4, 2], 0.5, 0.1).round(2).tolist()
    [-3.1, -5.3]
    """
    import numpy as np

    forward, backward = np.asarray(forward, np.float64), np.asarray(backward, np.float64)
    return forward + mmi_lambda * backward + mmi_gamma * np.asarray(lengths, np.float64)


def mmi_order(scores: Sequence[float]) -> list[int]:
    """Indices best first; ties keep the search's order (its best first)."""
    return sorted(range(len(scores)), key=lambda i: -scores[i])


@dataclass
class MmiCandidate:
    """One candidate reply and the unweighted terms of its MMI score."""

    hypothesis: Any  # a seq2seq.inference.translator.Hypothesis (text, tokens, ids, ...)
    forward: float  # log p(reply | message)
    backward: float  # log p(message | reply)
    length: int  # reply tokens, END excluded


def mmi_rerank(candidates: Sequence[MmiCandidate], mmi_lambda: float, mmi_gamma: float) -> list:
    """One input's hypotheses best first by MMI score, each carrying that score."""
    scores = mmi_scores(
        [c.forward for c in candidates],
        [c.backward for c in candidates],
        [c.length for c in candidates],
        mmi_lambda,
        mmi_gamma,
    )
    return [
        dataclasses.replace(candidates[k].hypothesis, score=float(scores[k]))
        for k in mmi_order(scores.tolist())
    ]


def candidate_decode(decode: DecodeConfig) -> DecodeConfig:
    """The search that gives the n-best list to rerank: ``mmi_candidates`` beams kept
    whole (beam search) or that many samples (sampling)."""
    size = decode.mmi_candidates
    if decode.method == "beam":
        return decode.replace(beam_size=size, n_best=size)
    if decode.method == "sample":
        return decode.replace(n_best=size)
    raise ConfigError(f"MMI reranks beam or sample n-best lists, not {decode.method} search")


def last_turn(source: str, separator: str) -> str:
    """The message of a dialogue input ``context <sep> message`` (what the backward model
    predicts: it was trained without context)."""
    return source.split(f" {separator} ")[-1]


# ---------------------------------------------------------------------------------------
# Finding and checking the backward run


def backward_run(run_dir: str | Path) -> Path:
    """Where the backward run of ``run_dir`` is looked for: ``RUN-backward`` beside it."""
    run = Path(run_dir)
    return run.parent / f"{run.name}{BACKWARD_SUFFIX}"


def find_backward(run_dir: str | Path, explicit: str | Path | None = None) -> Path | None:
    """The backward run to use: ``explicit`` (``RunError`` when it is not a run folder),
    else ``RUN-backward`` when that folder exists, else ``None``."""
    if explicit is not None:
        return open_run(explicit).root
    sibling = backward_run(run_dir)
    return sibling if sibling.is_dir() else None


def check_backward(forward: Config, backward: Config, where: str | Path) -> None:
    """``RunError`` unless ``backward`` is a backward model for the dialogue run ``forward``:
    a dialogue corpus read with ``data.reverse`` (source = reply, target = message), no
    context, the same corpus."""
    problems = []
    if not is_dialogue(forward.data.corpus, forward.data.context_turns) or forward.data.reverse:
        problems.append("MMI needs a (forward) dialogue run as --model")
    if not backward.data.reverse:
        problems.append("its data.reverse is false (a backward model maps reply -> message)")
    if backward.data.context_turns != 0:
        problems.append(f"its data.context_turns is {backward.data.context_turns}, not 0")
    if backward.data.corpus != forward.data.corpus:
        problems.append(
            f"it was trained on {backward.data.corpus!r}, the chat run on {forward.data.corpus!r}"
        )
    if problems:
        raise RunError(
            f"{where} cannot be the backward model for MMI reranking: "
            + "; ".join(problems)
            + f". Train one with `{TRAIN_BACKWARD.format(run='RUN')}`"
        )


def require_backward(
    run_dir: str | Path, forward: Config, explicit: str | Path | None = None
) -> Path:
    """The checked backward run for MMI reranking with ``run_dir``, or ``RunError`` saying
    how to get one (cheap: reads configs only)."""
    found = find_backward(run_dir, explicit)
    if found is None:
        raise RunError(
            f"MMI reranking needs a backward model: none at {backward_run(run_dir)}. "
            f"Train one with `{TRAIN_BACKWARD.format(run=run_dir)}`, or pass --backward-model"
        )
    try:
        config = load_run_config(open_run(found).config)
    except ConfigError as error:
        raise RunError(f"{found}: its config.yaml cannot be used: {error}") from error
    check_backward(forward, config, found)
    return found


class BackwardScorer:
    """log p(message | reply) with a loaded backward run (a ``Translator``)."""

    def __init__(self, backward: Any):
        from seq2seq.inference.prediction import SequenceScorer

        self.backward = backward
        self.scorer = SequenceScorer(backward.model)

    def log_probs(self, messages: Sequence[str], replies: Sequence[str]) -> np.ndarray:
        """Summed token log-probabilities of each message given its reply (float64 [N]).

        Texts are encoded with the backward run's own tokenizers; an empty reply is read
        as one unknown word, so it still gets a (low) score.
        """
        translator = self.backward
        sources = [ids or [UNK] for ids in translator.source_ids(list(replies))]
        targets = translator.target_tokenizer.encode_batch(list(messages))
        limit = translator.config.data.max_target_length
        return self.scorer.log_probs(
            sources,
            [ids[:limit] for ids in targets],
            max_source_length=translator.config.data.max_source_length,
        )
