"""Exporters: a run folder as a TensorFlow SavedModel (text in, text out) or a TFLite model.

``python -m seq2seq.export`` is the command line over ``export_saved_model`` and
``export_tflite``.

The SavedModel's ``serving_default`` signature (also named ``serve``) takes a 1-D string
tensor ``sentences`` and returns ``translations`` (string [B]), ``scores`` (float32 [B]:
the search's score, as ``Translation.score``) and ``lengths`` (int32 [B]: output tokens,
END excluded). Everything runs in the graph: UTF-8 repair, ``text.normalize``, the run's
tokenizer (``seq2seq.exporting.graph_tokenizers``), the search loops of
``seq2seq.search.loops`` (a
``tf.while_loop``; the same code ``Translator`` runs, without XLA so any TensorFlow
runtime can load it) and detokenisation. Loading needs TensorFlow and TensorFlow Text
(for its NFKC and SentencePiece kernels), not this package.

Caps are the ``Translator``'s: an input longer than ``max_input_chars`` characters (1000
by default) or empty after normalisation is rejected, which here means it gets the empty
translation, score 0 and length 0 (a batch cannot raise for one row); sources are shortened
to ``data.max_source_length`` tokens by the ``Translator``'s rule: a translation keeps its
start, a dialogue input (``context <sep> message``) loses its oldest whole context turns
first, then the start of the message (``seq2seq.data.dialogue``; ``dialogue_ids`` does it in the
graph). Outputs stop after ``decode.max_length`` tokens.
Invalid UTF-8 bytes become U+FFFD. A batch runs as one search, so its time is bounded by
``decode.max_length`` decoder steps whatever the inputs.

``--format tflite`` writes ``model.tflite``: greedy search with fixed shapes (one
sentence of ``data.max_source_length`` ids, right-padded with PAD = 0, in; at most
``decode.max_length`` ids out), built from TFLite builtin ops only, plus the run's
``source_vocab/`` and ``target_vocab/`` for tokenising on the device (TensorFlow Text's
NFKC and SentencePiece kernels are not TFLite ops, so text stays outside the model).
Shortening is then the caller's job too: keep the first ``data.max_source_length`` ids of
a translation; for a dialogue run (``dialogue`` in the metadata) drop whole oldest context
turns until the input fits, then keep the *last* ids.

A beam-search SavedModel has a second signature, ``translate_with_terms``: ``sentences``
[B] and ``terms`` (string [B, C]: the target terms each sentence's translation must
contain, ``""`` where a row has fewer), with the same outputs. It is the glossary's
search (``seq2seq.search.constrained``: dynamic beam allocation, the pieces that would
glue onto a finished term banned), in the graph; a row without terms decodes exactly as
``serving_default``. Matching a glossary's source terms stays with the caller, who knows
the glossary (``seq2seq.inference.glossary.Glossary.matches`` is the reference). A term
the run's target vocabulary cannot spell stops the request with an error naming it, as
``--glossary`` refuses the file.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

FORMATS = ("saved_model", "tflite")
METHODS = ("greedy", "beam")
INPUT_NAME = "sentences"
TERMS_NAME = "terms"
TERMS_SIGNATURE = "translate_with_terms"
OUTPUT_NAMES = ("translations", "scores", "lengths")
METADATA_FILE = "assets.extra/seq2seq_export.json"
TFLITE_FILE = "model.tflite"
TFLITE_METADATA_FILE = "seq2seq_export.json"


class ExportError(ValueError):
    """A run cannot be exported as asked."""


@dataclass(frozen=True)
class ExportSettings:
    """What the exported graph does; saved beside it as ``METADATA_FILE``."""

    method: str
    beam_size: int
    length_penalty: float
    max_length: int
    min_length: int
    repetition_penalty: float
    no_repeat_ngram_size: int
    max_source_length: int
    max_input_chars: int
    dialogue: bool  # inputs are ``context <sep> message``: shortened by the dialogue rule
    context_separator: str


def export_settings(
    translator, method: str | None = None, beam_size: int | None = None
) -> ExportSettings:
    """The run's decode settings with the export's overrides, validated like the config."""
    overrides: dict[str, Any] = {"n_best": 1}
    if method is not None:
        overrides["method"] = method
    decode = translator.decode_config(**overrides)
    if beam_size is not None:  # said plainly here, before resolve_decode's general message
        if decode.method != "beam":
            raise ExportError(
                f"--beam-size is for beam search; the export searches {decode.method}"
            )
        decode = translator.decode_config(**overrides, beam_size=beam_size)
    if decode.method not in METHODS:
        raise ExportError(
            f"decode.method is {decode.method!r}; an export searches with one of: "
            f"{', '.join(METHODS)} (pass --method)"
        )
    return ExportSettings(
        method=decode.method,
        beam_size=decode.beam_size if decode.method == "beam" else 1,
        length_penalty=decode.length_penalty,
        max_length=decode.max_length,
        min_length=decode.min_length,
        repetition_penalty=decode.repetition_penalty,
        no_repeat_ngram_size=decode.no_repeat_ngram_size,
        max_source_length=translator.config.data.max_source_length,
        max_input_chars=translator.max_input_chars,
        dialogue=translator.dialogue,
        context_separator=translator.config.data.context_separator,
    )


def model_text(texts):
    """Valid UTF-8 texts as the model reads them: NULs dropped as the CLI and Translator
    drop them (``line_io.clean_text``: a line of NULs alone is then empty and refused, not
    translated as whatever they encode to), then ``normalize_graph``."""
    import tensorflow as tf

    from seq2seq.exporting.graph_tokenizers import normalize_graph

    return normalize_graph(tf.strings.regex_replace(texts, r"\x00", ""))


def source_batch(codec, sentences, settings: ExportSettings):
    """Strings [B] -> (padded source ids [B,S>=1], accepted [B]) as ``Translator`` encodes.

    Rejected rows (too long, or empty after normalisation) are all PAD, which the search
    finishes before its first step; accepted rows the tokenizer keeps nothing of get UNK.
    """
    import tensorflow as tf

    from seq2seq.constants import UNK
    from seq2seq.exporting.graph_tokenizers import valid_utf8

    texts = valid_utf8(sentences)
    short = tf.strings.length(texts, unit="UTF8_CHAR") <= settings.max_input_chars
    texts = model_text(tf.where(short, texts, ""))
    accepted = tf.logical_and(short, tf.not_equal(texts, ""))
    limit = settings.max_source_length
    if settings.dialogue:
        ids = dialogue_ids(codec, texts, settings.context_separator, limit)
    else:
        ids = codec.encode(texts)[:, :limit]
    source = ids.to_tensor(default_value=0)
    source = tf.pad(source, [[0, 0], [0, tf.maximum(1 - tf.shape(source)[1], 0)]])
    nothing_kept = tf.logical_and(accepted, tf.equal(ids.row_lengths(), 0))
    first_column = tf.equal(tf.range(tf.shape(source)[1]), 0)[None, :]
    source = tf.where(tf.logical_and(nothing_kept[:, None], first_column), UNK, source)
    return tf.where(accepted[:, None], source, 0), accepted


def dialogue_ids(codec, texts, separator: str, limit: int):
    """Ids [B, (<=limit)] of dialogue inputs, shortened as ``Translator`` does: whole
    context turns are dropped, oldest first, until the rest encodes to ``limit`` ids or
    only the message is left (``dialogue.drop_oldest_turns``); then the last ``limit``
    ids are kept (``dialogue.keep_end``). Every suffix of turns is encoded at once."""
    import tensorflow as tf

    marker = f" {separator} "
    turns = tf.strings.split(texts, sep=marker)  # [B, (T>=1)], like str.split
    row = turns.value_rowids()  # the input of each turn
    starts = tf.range(tf.size(turns.values, out_type=tf.int64))
    ends = tf.gather(turns.row_splits[1:], row)  # one past each input's last turn
    suffixes = tf.strings.reduce_join(
        tf.gather(turns.values, tf.ragged.range(starts, ends)), axis=1, separator=marker
    )
    ids = codec.encode(suffixes)  # [every suffix, (L)]
    usable = tf.logical_or(ids.row_lengths() <= limit, tf.equal(starts + 1, ends))
    first = tf.math.segment_min(tf.where(usable, starts, ends - 1), row)
    return tf.gather(ids, first)[:, -limit:]


def processors_of(settings: ExportSettings):
    """The logit processors of the export's search, as constants."""
    import tensorflow as tf

    from seq2seq.search.loops import Processors

    return Processors(
        tf.constant(settings.min_length),
        tf.constant(settings.repetition_penalty, tf.float32),
        tf.constant(settings.no_repeat_ngram_size),
    )


def beam_arguments(settings: ExportSettings):
    """``beam_size, n_best, alpha`` for the beam loops. As in ``Searcher``, the beam size
    must not be a static shape: the loop's state would enter with [B, K] and leave with
    [B, None]."""
    import tensorflow as tf

    beam_size = tf.compat.v1.placeholder_with_default(settings.beam_size, [])
    return beam_size, tf.constant(1), tf.constant(settings.length_penalty, tf.float32)


def search(model, source, settings: ExportSettings, constraints=None, glue=None):
    """Best hypothesis ids [B,L] and scores [B], by the loops ``Translator`` runs; with
    ``constraints`` [B,C,L] (and ``glue``, see ``constrained_beam_loop``), beam search
    whose outputs hold each row's constraints."""
    import tensorflow as tf

    from seq2seq.search.constrained import constrained_beam_loop
    from seq2seq.search.loops import beam_loop, greedy_loop

    processors = processors_of(settings)
    encoded = model.encode(source)
    max_length = tf.constant(settings.max_length)
    if settings.method == "greedy":
        ids, scores, _, _ = greedy_loop(model, encoded, max_length, processors)
        return ids, scores
    beam = beam_arguments(settings)
    if constraints is None:
        ids, scores, _, _ = beam_loop(model, encoded, max_length, processors, *beam)
    else:
        ids, scores, _, _ = constrained_beam_loop(
            model, encoded, max_length, processors, *beam, constraints, glue
        )
    return ids[:, 0], scores[:, 0]


def check_terms(terms, sentences):
    """``terms`` unchanged once it is known to be [B, C] for the B ``sentences``, else an
    error that says so (the loaded signature checks no shapes: see ``check_vector``)."""
    import tensorflow as tf

    shape = tf.strings.reduce_join(tf.strings.as_string(tf.shape(terms)), separator=",")
    rows = tf.concat([tf.shape(terms), [-1]], axis=0)[0]  # -1 for a scalar
    check = tf.debugging.Assert(
        tf.logical_and(
            tf.strings.regex_full_match(shape, "[0-9]+,[0-9]+"),
            tf.equal(rows, tf.shape(sentences)[0]),
        ),
        [
            f"'{TERMS_NAME}' must be a 2-D batch of strings, shape [B, C], one row per "
            f"sentence of '{INPUT_NAME}' (\"\" where a row has fewer terms); got shape",
            shape,
            "for sentences of shape",
            tf.strings.as_string(tf.shape(sentences)),
        ],
    )
    with tf.control_dependencies([check]):
        return tf.identity(terms)


def constraint_batch(codec, terms):
    """Target terms [B, C] (``""``: none) -> constraints [B, C'>=1, L>=1] int32, each term
    encoded as ``Glossary.with_vocabulary`` encodes it (alone, after the input's
    normalisation), PAD-padded. A term that encodes to ``<unk>`` pieces or to nothing
    stops the call with an error that quotes it."""
    import tensorflow as tf

    from seq2seq.constants import PAD, UNK
    from seq2seq.exporting.graph_tokenizers import valid_utf8

    flat = tf.reshape(terms, [-1])
    texts = model_text(valid_utf8(flat))
    given = tf.not_equal(texts, "")
    ids = codec.encode(tf.where(given, texts, ""))  # [B*C, (L)]
    unknown = tf.reduce_any(tf.equal(ids, UNK), axis=1)
    unspellable = tf.logical_and(given, tf.logical_or(unknown, tf.equal(ids.row_lengths(), 0)))
    check = tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(unspellable)),
        [
            "the run's target vocabulary cannot spell these terms (a piece is <unk>, or "
            "nothing is left after tokenisation); use another spelling or a run whose "
            "vocabulary has them:",
            tf.boolean_mask(flat, unspellable),
        ],
        summarize=20,
    )
    with tf.control_dependencies([check]):
        dense = ids.to_tensor(default_value=PAD)
    shape = tf.shape(terms)
    constraints = tf.reshape(dense, [shape[0], shape[1], tf.shape(dense)[1]])
    return tf.pad(
        constraints,
        [
            [0, 0],
            [0, tf.maximum(1 - shape[1], 0)],
            [0, tf.maximum(1 - tf.shape(dense)[1], 0)],
        ],
        constant_values=PAD,
    )


def check_vector(sentences):
    """``sentences`` unchanged once it is known to be 1-D, else an error that says so.

    A loaded signature does not check the shape of what it is fed, and the traced graph
    takes the rank 1 of its signature for granted (``tf.rank`` and ``assert_rank`` are
    folded to constants): a [1, 1] batch failed deep inside the tokenizer. The shape's
    values are runtime data, so they are turned into text ("1,1") and checked.
    """
    import tensorflow as tf

    shape = tf.strings.reduce_join(tf.strings.as_string(tf.shape(sentences)), separator=",")
    check = tf.debugging.Assert(
        tf.strings.regex_full_match(shape, "[0-9]+"),
        [f"'{INPUT_NAME}' must be a 1-D batch of strings, shape [B]; got shape", shape],
    )
    with tf.control_dependencies([check]):
        return tf.identity(sentences)


def text_outputs(target_codec, ids, scores):
    """The signatures' outputs from the best hypotheses' ids [B,L] and scores [B]."""
    from seq2seq.exporting.graph_tokenizers import clean_ids

    ids, lengths = clean_ids(ids)
    return {
        "translations": target_codec.decode(ids, lengths),
        "scores": scores,
        "lengths": lengths,
    }


def serving_function(model, source_codec, target_codec, settings: ExportSettings):
    """``sentences`` [B] string -> {translations, scores, lengths}, all graph ops."""

    def serve(sentences):
        sentences = check_vector(sentences)
        source, _ = source_batch(source_codec, sentences, settings)
        return text_outputs(target_codec, *search(model, source, settings))

    return serve


def terms_serving_function(model, source_codec, target_codec, glue, settings: ExportSettings):
    """``sentences`` [B], ``terms`` [B, C] string -> the outputs of ``serving_function``,
    each translation holding its row's terms (beam search only)."""

    def serve_with_terms(sentences, terms):
        sentences = check_vector(sentences)
        terms = check_terms(terms, sentences)
        source, _ = source_batch(source_codec, sentences, settings)
        constraints = constraint_batch(target_codec, terms)
        found = search(model, source, settings, constraints, glue)
        return text_outputs(target_codec, *found)

    return serve_with_terms


def load_for_export(run_dir: str | Path, output: str | Path):
    """The run's ``Translator`` (without XLA: exports run plain graphs), if ``output`` is free."""
    from seq2seq.inference.translator import Translator
    from seq2seq.run_lock import check_output

    check_output(output, ExportError)
    return Translator.from_run(run_dir, jit_compile=False)


def write_export(
    output: str | Path,
    translator,
    settings: ExportSettings,
    signature: dict[str, Any],
    metadata_file: str,
    fill: Callable[[Path], None],
) -> None:
    """Create and lock ``output`` (``seq2seq.run_lock``: a second export to the same folder
    is refused), then write the export into it.

    ``fill(folder)`` writes the model files; the settings and ``signature`` go to
    ``metadata_file``, last. A failure removes ``output``.
    """
    from seq2seq.run_lock import new_output

    with new_output(output, "export", ExportError) as output:
        fill(output)
        metadata = {
            "run": str(translator.paths.root.resolve()),
            "name": translator.config.name,
            "signature": signature,
            **asdict(settings),
        }
        (output / metadata_file).parent.mkdir(parents=True, exist_ok=True)
        (output / metadata_file).write_text(json.dumps(metadata, indent=2), encoding="utf-8")


def build_archive(translator, settings: ExportSettings):
    """A ``keras.export.ExportArchive`` with the text-in, text-out endpoint, and for beam
    search the one that also takes each sentence's target terms."""
    import keras
    import tensorflow as tf

    from seq2seq.exporting.graph_tokenizers import graph_codec
    from seq2seq.inference.glossary import word_continuations

    source_codec = graph_codec(translator.source_tokenizer, "source")
    target_codec = graph_codec(translator.target_tokenizer, "target")
    archive = keras.export.ExportArchive()
    archive.track(translator.model)
    archive.track(source_codec)
    archive.track(target_codec)
    sentences = tf.TensorSpec([None], tf.string, name=INPUT_NAME)
    archive.add_endpoint(
        "serve",
        serving_function(translator.model, source_codec, target_codec, settings),
        input_signature=[sentences],
    )
    if settings.method == "beam":
        glue = tf.constant(word_continuations(translator.target_tokenizer))
        archive.add_endpoint(
            TERMS_SIGNATURE,
            terms_serving_function(translator.model, source_codec, target_codec, glue, settings),
            input_signature=[sentences, tf.TensorSpec([None, None], tf.string, name=TERMS_NAME)],
        )
    return archive


def signature_metadata(settings: ExportSettings) -> dict[str, Any]:
    """The signatures' names for ``METADATA_FILE``."""
    signature: dict[str, Any] = {"input": INPUT_NAME, "outputs": list(OUTPUT_NAMES)}
    if settings.method == "beam":
        signature[TERMS_SIGNATURE] = {"inputs": [INPUT_NAME, TERMS_NAME]}
    return signature


def export_saved_model(
    run_dir: str | Path,
    output: str | Path,
    method: str | None = None,
    beam_size: int | None = None,
) -> ExportSettings:
    """Write the SavedModel of ``run_dir`` to ``output`` (which must not exist yet).

    It is written to a temporary folder beside ``output`` and renamed at the end, so a
    failed export leaves nothing behind. ``RunError`` for a missing, incomplete or
    incompatible run; ``ExportError`` (or ``GraphTextError``) for what cannot be exported.
    """
    translator = load_for_export(run_dir, output)
    settings = export_settings(translator, method, beam_size)
    archive = build_archive(translator, settings)
    write_export(
        output,
        translator,
        settings,
        signature_metadata(settings),
        METADATA_FILE,
        lambda folder: archive.write_out(str(folder), verbose=False),
    )
    return settings


def tflite_function(model, settings: ExportSettings):
    """Greedy search on one padded id row [1, S] -> ids [1, L], scores [1], lengths [1].

    The variables are frozen into constants first: left as resources, the reads inside
    the decoder's WHILE body fail at run time in the TFLite interpreter ("READ_VARIABLE
    ... variable != nullptr was not true").
    """
    import tensorflow as tf

    from seq2seq.compat import freeze_variables
    from seq2seq.exporting.graph_tokenizers import clean_ids

    spec = tf.TensorSpec([1, settings.max_source_length], tf.int32, name="source")

    def greedy(source):
        ids, scores = search(model, source, settings)
        ids, lengths = clean_ids(ids)
        return ids, scores, lengths

    traced = tf.function(greedy, input_signature=[spec], autograph=False)
    frozen = freeze_variables(traced.get_concrete_function(), lower_control_flow=False)

    def named(source):
        return dict(zip(("ids", "scores", "lengths"), frozen(source), strict=True))

    return tf.function(named, input_signature=[spec]).get_concrete_function()


def export_tflite(
    run_dir: str | Path,
    output: str | Path,
    method: str | None = None,
    beam_size: int | None = None,
) -> ExportSettings:
    """Write ``model.tflite`` (greedy, fixed shapes) and the tokenizers to ``output``."""
    import tensorflow as tf

    if method not in (None, "greedy") or beam_size is not None:
        raise ExportError(
            f"--format tflite exports greedy search only (got method {method!r}, "
            f"beam size {beam_size})"
        )
    translator = load_for_export(run_dir, output)
    settings = export_settings(translator, "greedy")
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [tflite_function(translator.model, settings)], tf.Module()
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    flatbuffer = converter.convert()

    def fill(folder: Path) -> None:
        (folder / TFLITE_FILE).write_bytes(flatbuffer)
        shutil.copytree(translator.paths.source_vocab, folder / "source_vocab")
        shutil.copytree(translator.paths.target_vocab, folder / "target_vocab")

    signature = {"input": "source", "outputs": ["ids", "scores", "lengths"]}
    write_export(output, translator, settings, signature, TFLITE_METADATA_FILE, fill)
    return settings
