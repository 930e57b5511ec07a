"""Ensembles: several runs decoding as one model (``translate``/``evaluate`` ``--model A
--model B ...``).

``EnsembleModel`` has the step API the search loops use (``encode``, ``decode_step``,
``target_vocab_size``) and the teacher-forced ``__call__`` the sequence scorer uses, so
greedy, beam and sampling search, streaming, MMI reranking and the evaluation's
perplexity all run unchanged over it, inside the same compiled loops. Each member keeps
its own encoder memory and decoder states (nested in the loop's state, so beam search
reorders them with everything else); every step returns the mean of the members'
log-probabilities, which the loop then normalises (``log_softmax``): a log-linear
ensemble, a product of the members' distributions. Attention weights are the members'
mean (for ``replace_unk`` and heat maps).

Members must share both vocabularies, byte for byte (``check_members``, before
TensorFlow loads): a mean of log-probabilities over different target ids is meaningless,
and one source batch feeds every encoder. Runs trained on the same data config share
their prepared folder's tokenizers, whatever their model.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from seq2seq.runs import RunError, RunPaths, open_run


def folder_digest(folder: Path) -> str:
    """SHA-256 over the names and bytes of every file in a tokenizer folder."""
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(folder).as_posix()}\0".encode())
        digest.update(file.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def check_members(runs: list[str | Path]) -> list[RunPaths]:
    """The members' run folders, checked: each one usable (``open_run``), named once, and
    all with the first one's target and source vocabularies; else one-line ``RunError``."""
    if not runs:
        raise RunError("an ensemble needs at least one --model RUN")
    paths = [open_run(run) for run in runs]
    seen: dict[Path, str] = {}
    for run, member in zip(runs, paths, strict=True):
        key = member.root.resolve()
        if key in seen:
            raise RunError(f"ensemble: {run} is given twice (as {seen[key]}); give each run once")
        seen[key] = str(run)
    first = paths[0]
    for side in ("target_vocab", "source_vocab"):
        expected = folder_digest(getattr(first, side))
        for member in paths[1:]:
            found = folder_digest(getattr(member, side))
            if found != expected:
                raise RunError(
                    f"ensemble members do not match: {member.root}/{side}/ differs from "
                    f"{first.root}/{side}/ (vocabulary {found[:12]} vs {expected[:12]}); "
                    "ensemble runs trained with the same tokenizers (the same data config)"
                )
    return paths


class EnsembleModel:
    """Several ``Seq2Seq`` models behind one step API: per-step mean log-probabilities."""

    def __init__(self, members: list):
        if not members:
            raise ValueError("an ensemble needs at least one model")
        sizes = {(m.source_vocab_size, m.target_vocab_size) for m in members}
        if len(sizes) != 1:
            raise ValueError(f"ensemble members have different vocabulary sizes: {sorted(sizes)}")
        self.members = list(members)
        self.source_vocab_size, self.target_vocab_size = sizes.pop()

    def __len__(self) -> int:
        return len(self.members)

    def mean_log_probs(self, logits: list):
        import tensorflow as tf

        log_probs = [tf.nn.log_softmax(tf.cast(x, tf.float32), axis=-1) for x in logits]
        return tf.add_n(log_probs) / float(len(log_probs))

    def encode(self, source, training=False):
        """(members' memories, source mask, members' decoder states): nested tuples."""
        encoded = [member.encode(source, training=training) for member in self.members]
        memory = tuple(e[0] for e in encoded)
        states = tuple(e[2] for e in encoded)
        return memory, encoded[0][1], states  # one source: one mask (ids != PAD)

    def decode_step(self, tokens, states, memory, source_mask):
        """Ids [B] -> (mean log-probabilities [B,V], new states, mean attention [B,S])."""
        import tensorflow as tf

        logits, new_states, weights = [], [], []
        for member, member_states, member_memory in zip(self.members, states, memory, strict=True):
            step_logits, step_states, step_weights = member.decode_step(
                tokens, member_states, member_memory, source_mask
            )
            logits.append(step_logits)
            new_states.append(step_states)
            weights.append(tf.cast(step_weights, tf.float32))
        attention = tf.add_n(weights) / float(len(weights))
        return self.mean_log_probs(logits), tuple(new_states), attention

    def __call__(self, inputs, training=False):
        """Teacher-forced mean log-probabilities [B,T,V] (the sequence scorer normalises)."""
        return self.mean_log_probs([member(inputs, training=training) for member in self.members])


def load_ensemble(
    runs: list[str | Path],
    max_input_chars: int = 1000,
    jit_compile: bool | None = None,
    eager_until_built: bool = False,
    backward: str | Path | None = None,
):
    """A ``Translator`` over the ensemble of ``runs`` (one run: that run's own translator).

    The first run gives the config (decode settings, lengths, task) and the tokenizers;
    every run is loaded and checked like ``Translator.from_run``.
    """
    from seq2seq.inference.translator import Translator

    options = dict(
        max_input_chars=max_input_chars,
        jit_compile=jit_compile,
        eager_until_built=eager_until_built,
    )
    if len(runs) == 1:
        return Translator.from_run(runs[0], backward=backward, **options)
    check_members(runs)
    translators = [Translator.from_run(runs[0], backward=backward, **options)]
    translators += [Translator.from_run(run, **options) for run in runs[1:]]
    first = translators[0]
    ensemble = Translator(
        first.config,
        first.paths,
        EnsembleModel([t.model for t in translators]),
        first.source_tokenizer,
        first.target_tokenizer,
        max_input_chars,
        eager_until_built=eager_until_built,
    )
    ensemble.backward_dir = first.backward_dir
    ensemble.members = [t.paths.root for t in translators]
    return ensemble
