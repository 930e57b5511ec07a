"""Load a trained run once and translate sentences with it (the toolkit's inference API).

``Translator.from_run(run_dir)`` checks the run folder, loads the model (``safe_mode``)
and both tokenizers; ``translate(sentences, decode)`` normalises, encodes, batches by
length, searches with ``decode`` (a ``DecodeConfig`` resolved once at the edge, e.g. by
``decode_config(**overrides)``; default: the run's ``decode`` settings) and returns one
``Translation`` per input, in input order.
``stream(sentence)`` yields one input's translation as it grows, chunk by chunk of
decoder steps; with ``mmi_lambda`` set, a dialogue run reranks its n-best lists by mutual
information with its backward run (``seq2seq.inference.mmi``).
"""

from __future__ import annotations

import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seq2seq.cli.line_io import clean_text
from seq2seq.config import Config, ConfigError, DecodeConfig, load_run_config
from seq2seq.constants import UNK
from seq2seq.data.corpora.spec import is_dialogue
from seq2seq.data.dialogue import drop_oldest_turns, keep_end
from seq2seq.data.tokenizers import Tokenizer, TokenizerError, load_tokenizer, normalize
from seq2seq.inference.copy_names import CopyNames, known_source_words, merge_constraints
from seq2seq.inference.glossary import Glossary, check_method, word_continuations
from seq2seq.inference.mmi import (
    BackwardScorer,
    MmiCandidate,
    candidate_decode,
    find_backward,
    last_turn,
    mmi_rerank,
    require_backward,
)
from seq2seq.inference.prediction import SequenceScorer, pad_batch, search_batches
from seq2seq.runs import RunError, RunPaths, check_fingerprint, model_file, open_run
from seq2seq.search.loops import SearchResult, strip_ids
from seq2seq.search.options import resolve_decode
from seq2seq.search.searcher import STREAM_CHUNK_STEPS, STREAMABLE, Searcher

BATCH_SIZE = 64
MAX_COPY_BEAMS = 16  # copy_names: the widest beam of the search again with constraints


@dataclass
class Hypothesis:
    """One entry of a search's n-best list for one input."""

    text: str
    tokens: list[str]
    score: float
    attention: np.ndarray
    ids: list[int]


@dataclass
class Translation:
    source: str  # the input as given
    text: str  # best hypothesis, detokenised and cased
    tokens: list[str]  # output pieces (for the heat map's y axis)
    source_tokens: list[str]  # input pieces (x axis)
    score: float  # log-probability (length-normalised for beam)
    n_best: list[tuple[str, float]] = field(default_factory=list)  # best first
    attention: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    truncated: bool = False  # the input was shortened to data.max_source_length tokens


def read_model(path: Path):
    """The Keras model in ``path`` (``safe_mode``), or ``RunError`` saying it is corrupt."""
    import keras

    import seq2seq.model  # noqa: F401  (registers the model classes for loading)

    if not zipfile.is_zipfile(path):
        raise RunError(f"{path} is corrupt: not a complete .keras archive (truncated?)")
    try:
        return keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as error:  # Keras raises many types for damaged archives
        raise RunError(f"{path} is corrupt or not a seq2seq model: {error}") from error


def load_model(paths: RunPaths):
    """The run's model (best, else last). A corrupt ``model.keras`` is refused, and the
    message offers ``last.keras`` (the last epoch's model) when that one loads."""
    path = model_file(paths)
    try:
        return read_model(path)
    except RunError as error:
        if path == paths.last_model or not paths.last_model.is_file():
            raise
        try:
            read_model(paths.last_model)
        except RunError:
            raise error from None
        raise RunError(
            f"{error}. The last epoch's model {paths.last_model.name} is intact: to use it, "
            f"copy it over {path.name} (cp {paths.last_model} {path}) or retrain"
        ) from error


def check_vocabularies(paths: RunPaths, model, source: Tokenizer, target: Tokenizer) -> None:
    """A model from another run (other vocabularies) would load and translate nonsense:
    its embedding and output sizes must equal the tokenizers' vocabulary sizes."""
    sizes = {
        "source": (model.encoder.embedding.input_dim, source.vocab_size, "source_vocab"),
        "target": (model.decoder.embedding.input_dim, target.vocab_size, "target_vocab"),
    }
    for side, (in_model, in_tokenizer, folder) in sizes.items():
        if in_model != in_tokenizer:
            raise RunError(
                f"{paths.root}: {model_file(paths).name} has a {side} vocabulary of "
                f"{in_model:,} ids but {folder}/ has {in_tokenizer:,}: the model and the "
                "tokenizers come from different runs"
            )


class InputError(ValueError):
    """An input sentence cannot be translated: empty, or longer than the limit."""


@dataclass
class Encoded:
    ids: list[int]
    pieces: list[str]
    truncated: bool


class Translator:
    """A trained model plus its tokenizers and search settings."""

    def __init__(
        self,
        config: Config,
        paths: RunPaths,
        model,
        source_tokenizer: Tokenizer,
        target_tokenizer: Tokenizer,
        max_input_chars: int = 1000,
        eager_until_built: bool = False,
    ):
        self.config = config
        self.paths = paths
        self.model = model
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        self.max_input_chars = max_input_chars
        self.searcher = Searcher(
            model, jit_compile=config.decode.jit_compile, eager_until_built=eager_until_built
        )
        self.scorer = SequenceScorer(model)
        self._glue = None  # constraints: target pieces that continue a word (set on first use)
        self._copy_names: CopyNames | None = None  # decode.copy_names (set on first use)
        self._unk_marker = target_tokenizer.decode([UNK]).strip()
        self.chunk_steps = STREAM_CHUNK_STEPS  # decoder steps per streamed chunk
        self.backward_dir: Path | None = None  # MMI: the backward run (``use_backward``)
        self._backward: BackwardScorer | None = None
        self._backward_lock = threading.Lock()

    @classmethod
    def from_run(
        cls,
        run_dir: str | Path,
        max_input_chars: int = 1000,
        jit_compile: bool | None = None,
        backward: str | Path | None = None,
        eager_until_built: bool = False,
    ) -> Translator:
        """Load a run folder once; ``RunError`` if it is missing, incomplete or incompatible.

        ``jit_compile`` overrides the run's ``decode.jit_compile`` (XLA pays off once a
        translator decodes more than a few batches). ``eager_until_built``: searches run
        op by op until their program is built (``Searcher``): for a few sentences, or an
        app that calls ``searcher.warm_up()``. A dialogue run takes ``backward`` (else
        ``RUN-backward`` when it exists, ``seq2seq.inference.mmi.find_backward``) as its backward
        model for MMI reranking, loaded on first use.
        """
        paths = open_run(run_dir)
        try:
            config = load_run_config(paths.config)
        except ConfigError as error:
            raise RunError(f"{paths.root}: its config.yaml cannot be used: {error}") from error
        if jit_compile is not None:
            config = config.replace(decode=config.decode.replace(jit_compile=jit_compile))
        try:
            source_tokenizer = load_tokenizer(paths.source_vocab)
            target_tokenizer = load_tokenizer(paths.target_vocab)
        except (TokenizerError, OSError, ValueError, KeyError, RuntimeError) as error:
            # RuntimeError: sentencepiece on a truncated or damaged spm.model
            raise RunError(
                f"{paths.root}: cannot load its tokenizers (damaged files?): {error}"
            ) from error
        model = load_model(paths)
        check_vocabularies(paths, model, source_tokenizer, target_tokenizer)
        check_fingerprint(paths)  # same sizes: are they the very tokenizers of this model?
        translator = cls(
            config,
            paths,
            model,
            source_tokenizer,
            target_tokenizer,
            max_input_chars,
            eager_until_built=eager_until_built,
        )
        if translator.dialogue and not config.data.reverse:
            found = find_backward(paths.root, backward)
            if found is not None:
                translator.use_backward(found)
        elif backward is not None:
            translator.use_backward(backward)  # refused: MMI is for dialogue runs
        return translator

    def use_backward(self, run_dir: str | Path) -> None:
        """Rerank by MMI with this backward run (checked now, loaded on first use)."""
        self.backward_dir = require_backward(self.paths.root, self.config, run_dir)
        self._backward = None

    def backward_scorer(self) -> BackwardScorer:
        """The loaded backward model, or ``RunError`` saying how to get one."""
        if self.backward_dir is None:
            require_backward(self.paths.root, self.config)  # raises: says what to do
        with self._backward_lock:
            if self._backward is None:
                self._backward = BackwardScorer(Translator.from_run(self.backward_dir))
            return self._backward

    # -- settings --------------------------------------------------------------------

    def decode_config(self, **overrides: Any) -> DecodeConfig:
        """The run's decode settings with ``overrides`` (``DecodeConfig`` fields), validated
        by ``seq2seq.search.options.resolve_decode`` (``ConfigError`` names the field): the
        edge for a library caller; ``translate`` and the rest take the result as it is."""
        return resolve_decode(self.config, overrides)

    def _decode(self, decode: DecodeConfig | None) -> DecodeConfig:
        return self.config.decode if decode is None else decode

    # -- inputs ----------------------------------------------------------------------

    def check_input(self, sentence: str, where: str = "input") -> str:
        """The normalised sentence, or ``InputError`` if it is empty or too long."""
        if not isinstance(sentence, str):
            raise InputError(f"{where} must be text, got {type(sentence).__name__}")
        if len(sentence) > self.max_input_chars:
            raise InputError(
                f"{where} is {len(sentence)} characters long; the limit is "
                f"{self.max_input_chars} characters (max_input_chars)"
            )
        sentence, _ = clean_text(sentence)  # lone surrogates, NULs: no tokenizer takes them
        text = normalize(sentence)
        if not text:
            raise InputError(f"{where} is empty")
        return text

    def encode(self, text: str) -> Encoded:
        """Ids and pieces of one input, shortened to ``data.max_source_length`` tokens by
        ``fit_text`` and ``cut``."""
        shortened = self.fit_text(text)
        ids = list(self.source_tokenizer.encode(shortened))
        pieces = list(self.source_tokenizer.pieces(shortened))
        if len(pieces) != len(ids):  # should not happen; keep the axes consistent anyway
            pieces = [self.source_tokenizer.id_to_piece(i) for i in ids]
        if not ids:  # nothing the tokenizer keeps: translate an unknown word
            ids, pieces = [UNK], [self.source_tokenizer.id_to_piece(UNK)]
        cut_ids, cut_pieces = self.cut(ids), self.cut(pieces)
        return Encoded(cut_ids, cut_pieces, shortened != text or len(cut_ids) < len(ids))

    def source_ids(self, texts: list[str]) -> list[list[int]]:
        """Model inputs of many texts (encoded in one batch), shortened like ``encode``."""
        ids = self.source_tokenizer.encode_batch(list(texts))
        limit = self.config.data.max_source_length
        for i, text in enumerate(texts):
            if len(ids[i]) > limit and self.dialogue:
                ids[i] = self.source_tokenizer.encode(self.fit_text(text))
            ids[i] = self.cut(ids[i])
        return ids

    @property
    def dialogue(self) -> bool:
        """Dialogue inputs (``context <sep> message``), by the corpus table's rule."""
        return is_dialogue(self.config.data.corpus, self.config.data.context_turns)

    def fit_text(self, text: str) -> str:
        """A dialogue input without the oldest context turns it cannot hold (one rule for
        the translator, ``evaluate`` and chat: ``seq2seq.data.dialogue``); other text as is."""
        if not self.dialogue:
            return text
        limit = self.config.data.max_source_length
        return drop_oldest_turns(
            text,
            self.config.data.context_separator,
            lambda source: len(self.source_tokenizer.encode(source)) <= limit,
        )

    def cut(self, items: list) -> list:
        """At most ``data.max_source_length`` tokens: a translation keeps its start, a
        dialogue input its end (the newest words, which the reply must answer)."""
        limit = self.config.data.max_source_length
        return keep_end(items, limit) if self.dialogue else items[:limit]

    # -- translation -----------------------------------------------------------------

    def translate(
        self,
        sentences: list[str],
        decode: DecodeConfig | None = None,
        *,
        batch_size: int = BATCH_SIZE,
        glossary: Glossary | None = None,
    ) -> list[Translation]:
        """One ``Translation`` per sentence, in order; ``InputError`` names a bad input.

        With a ``glossary`` (``seq2seq.inference.glossary``; beam search only, else
        ``GlossaryError``), the target terms of the source terms a sentence holds are put
        in its translation by constrained beam search (``seq2seq.search.constrained``).

        Sentences are decoded in length-sorted batches of ``batch_size``
        (``seq2seq.inference.prediction``), each with its own seed derived from ``decode.seed``.
        With ``decode.mmi_lambda`` set, each input's n-best list is reranked by mutual
        information (``seq2seq.inference.mmi``); ``RunError`` when there is no backward model.
        """
        if isinstance(sentences, str):
            sentences = [sentences]
        decode = self._decode(decode)
        glossary = self.check_glossary(glossary, decode)
        if decode.mmi_lambda is None:
            _, encoded, found_lists = self._search(sentences, decode, batch_size, glossary)
        else:
            encoded, scored = self._mmi_search(sentences, decode, batch_size, glossary)
            found_lists = [
                mmi_rerank(candidates, decode.mmi_lambda, decode.mmi_gamma) for candidates in scored
            ]
        return [
            self._translation(sentences[i], encoded[i], hypotheses)
            for i, hypotheses in enumerate(found_lists)
        ]

    def mmi_candidates(
        self, sentences: list[str], decode: DecodeConfig, *, batch_size: int = BATCH_SIZE
    ) -> list[list[MmiCandidate]]:
        """Each sentence's MMI candidates (the n-best list ``translate`` reranks) with the
        terms of their score unweighted, in the search's order: reranking them for many
        ``mmi_lambda``/``mmi_gamma`` values (``seq2seq.inference.mmi.mmi_rerank``) needs one search
        and two scoring passes in all. ``mmi_lambda`` must be set (its value is unused)."""
        if decode.mmi_lambda is None:
            raise ConfigError("mmi_candidates needs decode.mmi_lambda set (any value)")
        return self._mmi_search(sentences, decode, batch_size)[1]

    def check_glossary(
        self, glossary: Glossary | None, decode: DecodeConfig | None = None
    ) -> Glossary | None:
        """``glossary`` with its target terms encoded by this run's target tokenizer, or
        ``GlossaryError`` (a term it cannot spell; a search other than beam). An empty
        glossary is ``None``: nothing to constrain."""
        if glossary is None or not len(glossary):
            return None
        check_method(glossary.name, self._decode(decode).method)
        if not glossary.ids:
            glossary = glossary.with_vocabulary(self.target_tokenizer)
        if self._glue is None:
            self._glue = word_continuations(self.target_tokenizer)
        return glossary

    def _search(
        self,
        sentences: list[str],
        decode: DecodeConfig,
        batch_size: int,
        glossary: Glossary | None = None,
    ) -> tuple[list[str], list[Encoded], list[list[Hypothesis]]]:
        """The checked inputs, encoded, and each one's n-best list from ``decode``'s search."""
        many = len(sentences) > 1
        texts = [
            self.check_input(s, f"input {i + 1}" if many else "input")
            for i, s in enumerate(sentences)
        ]
        encoded = [self.encode(text) for text in texts]
        found_lists: list[list[Hypothesis]] = [[] for _ in sentences]
        constraints = None
        if glossary is not None:
            constraints = [glossary.constraints(text) for text in texts]
        everything = list(range(len(texts)))
        self._search_into(found_lists, everything, encoded, decode, batch_size, constraints)
        if decode.copy_names:
            self._copy_missing_names(found_lists, texts, encoded, decode, batch_size, constraints)
        return texts, encoded, found_lists

    def _search_into(
        self,
        found_lists: list[list[Hypothesis]],
        chosen: list[int],
        encoded: list[Encoded],
        decode: DecodeConfig,
        batch_size: int,
        constraints: list[list[list[int]]] | None,
    ) -> None:
        """Search inputs ``chosen`` (with their ``constraints``, in the order of
        ``chosen``) and put each one's n-best list in ``found_lists``."""
        if constraints is not None and self._glue is None:
            self._glue = word_continuations(self.target_tokenizer)
        ids = [encoded[i].ids for i in chosen]
        searches = search_batches(self.searcher, ids, decode, batch_size, constraints, self._glue)
        for batch, found in searches:
            for row, position in enumerate(batch.positions):
                i = chosen[position]
                found_lists[i] = self._hypotheses(encoded[i], found, row, decode)

    def _copy_missing_names(
        self,
        found_lists: list[list[Hypothesis]],
        texts: list[str],
        encoded: list[Encoded],
        decode: DecodeConfig,
        batch_size: int,
        constraints: list[list[list[int]]] | None,
    ) -> None:
        """``decode.copy_names``: search again the inputs whose best output lacks some copy
        terms (``seq2seq.inference.copy_names``), first with the missing terms as
        constraints, then, for those still short of a term (a constraint can push out a
        term the model had), with all of them."""
        copier = self.copy_names()
        pending = range(len(texts))
        for everything in (False, True):
            by_beams: dict[int, dict[int, list[list[int]]]] = {}
            for i in pending:
                missing = copier.missing(texts[i], found_lists[i][0].text) if found_lists[i] else []
                terms = copier.constraints(texts[i], None if everything else missing)
                if not missing or not terms:
                    continue
                tokens = sum(len(ids) for ids in terms)
                beams = min(max(decode.beam_size, tokens + 1), MAX_COPY_BEAMS)
                merged = merge_constraints(constraints[i] if constraints else None, terms)
                by_beams.setdefault(beams, {})[i] = merged
            for beams, again in sorted(by_beams.items()):  # a bank per constraint token
                wider = decode.replace(beam_size=beams)
                chosen = list(again)
                self._search_into(
                    found_lists, chosen, encoded, wider, batch_size, list(again.values())
                )
            pending = [i for again in by_beams.values() for i in again]

    def copy_names(self) -> CopyNames:
        """What ``decode.copy_names`` copies: unseen names and every number (loaded once)."""
        if self._copy_names is None:
            known = known_source_words(self.paths, self.config.data)
            self._copy_names = CopyNames(known, self.target_tokenizer)
        return self._copy_names

    def _mmi_search(
        self,
        sentences: list[str],
        decode: DecodeConfig,
        batch_size: int,
        glossary: Glossary | None = None,
    ) -> tuple[list[Encoded], list[list[MmiCandidate]]]:
        """The candidate search and both teacher-forced passes over all its candidates."""
        backward = self.backward_scorer()  # before searching: a missing run fails at once
        texts, encoded, found_lists = self._search(
            sentences, candidate_decode(decode), batch_size, glossary
        )
        flat = [(i, h) for i, hypotheses in enumerate(found_lists) for h in hypotheses]
        separator = self.config.data.context_separator
        forward = self.scorer.log_probs(
            [encoded[i].ids for i, _ in flat],
            [h.ids for _, h in flat],
            max_source_length=self.config.data.max_source_length,
        )
        reverse = backward.log_probs(
            [last_turn(texts[i], separator) for i, _ in flat], [h.text for _, h in flat]
        )
        scored: list[list[MmiCandidate]] = [[] for _ in found_lists]
        for (i, hypothesis), f, b in zip(flat, forward, reverse, strict=True):
            scored[i].append(MmiCandidate(hypothesis, float(f), float(b), len(hypothesis.ids)))
        return encoded, scored

    def parameter_table(self) -> list[list[Any]]:
        """Rows ``[part, gru, lstm, rnn]``: this run's parameter counts by part, and the same
        shape's with the other cells (built to be counted, never trained)."""
        from seq2seq.model import CELLS, parameter_counts_per_cell

        counts = parameter_counts_per_cell(self.model)
        parts = list(counts[self.config.model.cell])
        return [[part, *(counts[cell].get(part, 0) for cell in CELLS)] for part in parts]

    def translate_one(
        self, sentence: str, decode: DecodeConfig | None = None, *, glossary: Glossary | None = None
    ) -> Translation:
        return self.translate([sentence], decode, glossary=glossary)[0]

    def stream(
        self, sentence: str, decode: DecodeConfig | None = None, chunk_steps: int | None = None
    ) -> Iterator[Translation]:
        """The translation of one sentence as it is decoded: a growing ``Translation`` after
        every ``chunk_steps`` decoder steps (default ``self.chunk_steps``), the last equal
        to ``translate_one`` with the same settings (and seed). Beam search and MMI
        reranking need the whole search: they yield once, at the end. Closing the
        generator stops decoding within a chunk.
        """
        decode = self._decode(decode)
        if decode.method not in STREAMABLE or decode.mmi_lambda is not None or decode.n_best > 1:
            yield self.translate_one(sentence, decode)
            return
        encoded = self.encode(self.check_input(sentence))
        source = pad_batch([encoded.ids])
        chunk_steps = self.chunk_steps if chunk_steps is None else chunk_steps
        for found in self.searcher.stream(source, decode, chunk_steps):
            yield self._translation(sentence, encoded, self._hypotheses(encoded, found, 0, decode))

    def _hypotheses(
        self, encoded: Encoded, found: SearchResult, row: int, decode: DecodeConfig
    ) -> list[Hypothesis]:
        """Row ``row`` of a search's n-best list, best first, as text."""
        hypotheses = []
        for k in range(found.ids.shape[1]):
            ids = strip_ids(found.ids[row, k])
            weights = found.attention[row, k, : len(ids), : len(encoded.ids)]
            tokens = [self.target_tokenizer.id_to_piece(i) for i in ids]
            text = self.target_tokenizer.decode(ids)
            if decode.replace_unk:
                text, tokens = self._replace_unk(ids, tokens, text, weights, encoded.pieces)
            hypotheses.append(Hypothesis(text, tokens, float(found.scores[row, k]), weights, ids))
        return hypotheses

    def _translation(
        self, source: str, encoded: Encoded, hypotheses: list[Hypothesis]
    ) -> Translation:
        best = hypotheses[0]
        return Translation(
            source=source,
            text=best.text,
            tokens=best.tokens,
            source_tokens=encoded.pieces,
            score=best.score,
            n_best=[(h.text, h.score) for h in hypotheses],
            attention=np.asarray(best.attention, dtype=np.float32),
            truncated=encoded.truncated,
        )

    def _replace_unk(self, ids, tokens, text, weights, source_pieces):
        """Replace each UNK output by the source piece it attends to most."""
        if UNK not in ids or not source_pieces or not np.any(weights):
            return text, tokens
        tokens = list(tokens)
        replacements = []
        for position, token in enumerate(ids):
            if token == UNK:
                piece = source_pieces[int(np.argmax(weights[position]))].replace("\u2581", "")
                tokens[position] = piece
                replacements.append(piece)
        marker = self._unk_marker
        if marker:
            parts = text.split(marker)
            if len(parts) == len(replacements) + 1:
                text = parts[0] + "".join(
                    r + rest for r, rest in zip(replacements, parts[1:], strict=True)
                )
        return text, tokens
