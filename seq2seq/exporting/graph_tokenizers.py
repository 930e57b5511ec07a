"""The tokenizers of ``seq2seq.data.tokenizers`` as TensorFlow graph ops, for exported models.

An export must turn strings into ids and back without Python, so each tokenizer gets a
``tf.Module`` twin (``graph_codec``) whose ``encode``/``decode`` are pure TensorFlow:

- ``normalize_graph`` is ``text.normalize``: NFKC (ICU, via TensorFlow Text), the same
  zero-width characters removed, the same whitespace (every character Python's
  ``str.isspace`` accepts) collapsed, and UTF-8 lower-casing (full case mapping, as
  ``str.lower``: İ becomes i + U+0307, a final Σ becomes ς).
- Word vocabularies reuse ``text.make_standardizer`` (already TensorFlow) and a
  ``tf.lookup`` table; decoding runs the Moses detokeniser of ``sacremoses`` as a state
  machine over per-id features that are computed with sacremoses' own patterns.
- SentencePiece runs through TensorFlow Text's ``SentencepieceTokenizer`` on the run's
  own model proto.

Known, exact differences from the Python path (``tests/test_export.py`` checks them):
Python 3.11's ``unicodedata`` is Unicode 14.0 while the graph uses ICU's tables, so NFKC
differs on 98 code points (characters assigned after Unicode 14, e.g. U+1CCD6 'OUTLINED
LATIN CAPITAL LETTER A') and lower-casing on 41 (40 letters added in Unicode 14 such as
U+2C2F, and U+0000, which the graph drops). Invalid UTF-8 cannot reach the Python path
(it takes ``str``); the graph replaces each invalid byte with U+FFFD first, like
``bytes.decode("utf-8", "replace")``.
"""

from __future__ import annotations

import functools
import re

import numpy as np
import tensorflow as tf

from seq2seq.data.tokenizers import (
    END,
    PAD,
    UNK,
    ZERO_WIDTH_CHARACTERS,
    SentencePieceTokenizer,
    Tokenizer,
    WordTokenizer,
    make_standardizer,
)

# Languages whose Moses detokenisation has rules the graph codec does not implement.
UNSUPPORTED_DETOKENIZER_LANGUAGES = ("cs", "fi")


class GraphTextError(ValueError):
    """A tokenizer cannot be expressed as graph ops."""


def _character_class(characters: str) -> str:
    """An RE2 character class matching exactly ``characters``, as code point ranges."""
    points = sorted({ord(c) for c in characters})
    ranges: list[list[int]] = []
    for point in points:
        if ranges and point == ranges[-1][1] + 1:
            ranges[-1][1] = point
        else:
            ranges.append([point, point])
    parts = [f"\\x{{{a:x}}}" if a == b else f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in ranges]
    return "[" + "".join(parts) + "]"


@functools.cache
def _whitespace_class() -> str:
    """Every character ``str.split()`` splits on, as ``text.normalize`` collapses them."""
    return _character_class("".join(chr(c) for c in range(0x110000) if chr(c).isspace()))


def valid_utf8(texts: tf.Tensor) -> tf.Tensor:
    """Replace each invalid UTF-8 byte with U+FFFD, so later ops never fail on bad input."""
    return tf.strings.unicode_transcode(
        texts, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
    )


def normalize_graph(texts: tf.Tensor, lowercase: bool = False) -> tf.Tensor:
    """``text.normalize`` on a string tensor of valid UTF-8."""
    import tensorflow_text as tf_text

    texts = tf_text.normalize_utf8(texts, "NFKC")
    texts = tf.strings.regex_replace(texts, _character_class(ZERO_WIDTH_CHARACTERS), "")
    texts = tf.strings.regex_replace(texts, _whitespace_class() + "+", " ")
    texts = tf.strings.regex_replace(texts, "^ | $", "")
    return tf.strings.lower(texts, encoding="utf-8") if lowercase else texts


def clean_ids(ids: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Search output [B,T] -> (ids up to the first END or PAD, PAD after; lengths [B])."""
    stop = tf.logical_or(tf.equal(ids, END), tf.equal(ids, PAD))
    keep = tf.equal(tf.math.cumsum(tf.cast(stop, tf.int32), axis=1), 0)  # TFLite has no cumprod
    return tf.where(keep, ids, PAD), tf.reduce_sum(tf.cast(keep, tf.int32), axis=1)


# ---------------------------------------------------------------------------------------
# Word vocabularies


class _Feature:
    """Columns of the per-id Moses feature table."""

    CJK_FIRST, CJK_LAST, CURRENCY, PUNCT, FRENCH_PUNCT = 0, 1, 2, 3, 4
    EN_CONTRACTION, FR_CONTRACTION, STARTS_ALPHA, QUOTE, APOSTROPHE, ENDS_S = range(5, 11)
    COUNT = 11


def moses_features(pieces: list[str], language: str) -> tuple[np.ndarray, int]:
    """[V, features] int32 table of what Moses' detokeniser asks about each piece.

    Computed with sacremoses' own class patterns, so the graph state machine only has
    to combine them in Moses' order. ``QUOTE`` is the index of the piece's quote-count
    key (-1 for none); the second value is the number of keys.
    """
    from sacremoses import MosesDetokenizer
    from sacremoses.util import is_cjk

    moses = MosesDetokenizer
    table = np.zeros((len(pieces), _Feature.COUNT), np.int32)
    table[:, _Feature.QUOTE] = -1
    keys: dict[str, int] = {}
    for i, piece in enumerate(pieces):
        if not piece or any(c.isspace() for c in piece) or piece == "@-@":
            continue  # never produced by the word tokenizer's split (see WordTokenizer)
        row = table[i]
        row[_Feature.CJK_FIRST] = is_cjk(piece[0]) and language != "ko"
        row[_Feature.CJK_LAST] = is_cjk(piece[-1])
        row[_Feature.CURRENCY] = bool(moses.IS_CURRENCY_SYMBOL.search(piece))
        row[_Feature.PUNCT] = bool(moses.IS_PUNCT.search(piece))
        row[_Feature.FRENCH_PUNCT] = language == "fr" and bool(
            re.search(r"^[\?\!\:\;\\\%]$", piece)
        )
        row[_Feature.EN_CONTRACTION] = language == "en" and bool(
            moses.IS_ENGLISH_CONTRACTION.search(piece)
        )
        row[_Feature.FR_CONTRACTION] = language in ("fr", "it", "ga") and bool(
            moses.IS_FRENCH_CONRTACTION.search(piece)
        )
        row[_Feature.STARTS_ALPHA] = bool(moses.STARTS_WITH_ALPHA.search(piece))
        if moses.IS_OPEN_QUOTE.search(piece):
            key = '"' if re.search(r"^[„“”]+$", piece) else piece
            row[_Feature.QUOTE] = keys.setdefault(key, len(keys))
        row[_Feature.APOSTROPHE] = language == "en" and piece == "'"
        row[_Feature.ENDS_S] = bool(re.search(r"[s]$", piece))
    return table, max(len(keys), 1)


def moses_spaces(features: tf.Tensor, lengths: tf.Tensor, quote_keys: int) -> tf.Tensor:
    """[B,T] bool: whether Moses puts a space before each token (features [B,T,F]).

    ``MosesDetokenizer.tokenize`` walks the tokens left to right keeping ``prepend_space``
    and a count per quote key; this is the same walk, vectorised over the batch.
    """
    f = _Feature
    batch, steps = tf.shape(features)[0], tf.shape(features)[1]
    positions = tf.range(steps)
    previous = tf.pad(features[:, :-1], [[0, 0], [1, 0], [0, 0]])
    following = tf.pad(features[:, 1:], [[0, 0], [0, 1], [0, 0]])
    has_previous = tf.broadcast_to(positions[None, :] > 0, [batch, steps])
    has_next = positions[None, :] < lengths[:, None] - 1
    valid = positions[None, :] < lengths[:, None]

    def flag(x, column):
        return tf.not_equal(x[..., column], 0)

    static = {
        "cjk": flag(features, f.CJK_FIRST),
        "cjk_join": tf.logical_and(has_previous, flag(previous, f.CJK_LAST)),
        "currency": flag(features, f.CURRENCY),
        "punct": flag(features, f.PUNCT),
        "french_punct": flag(features, f.FRENCH_PUNCT),
        "en_contraction": tf.logical_and(has_previous, flag(features, f.EN_CONTRACTION)),
        "fr_contraction": tf.logical_and(
            flag(features, f.FR_CONTRACTION),
            tf.logical_and(has_next, flag(following, f.STARTS_ALPHA)),
        ),
        "possessive": tf.logical_and(
            tf.logical_and(has_previous, flag(features, f.APOSTROPHE)), flag(previous, f.ENDS_S)
        ),
        "quote": features[..., f.QUOTE],
        "valid": valid,
    }
    # Time-major for tf.scan.
    static = {k: tf.transpose(v, [1, 0]) for k, v in static.items()}

    def step(carry, token):
        prepend, counts, _ = carry
        key = token["quote"]
        is_quote = key >= 0
        count = tf.gather(counts, tf.maximum(key, 0), batch_dims=1)
        even = tf.equal(count % 2, 0)
        left_possessive = tf.logical_and(even, token["possessive"])
        true = tf.ones_like(prepend)
        false = tf.zeros_like(prepend)
        # Each rule: (applies, space before, prepend_space after), first match wins.
        rules = [
            (token["cjk"], tf.logical_and(prepend, ~token["cjk_join"]), true),
            (token["currency"], prepend, false),
            (token["punct"], token["french_punct"], true),
            (token["en_contraction"], false, true),
            (token["fr_contraction"], prepend, false),
            (
                is_quote,
                tf.logical_and(even, tf.logical_and(prepend, ~left_possessive)),
                tf.logical_or(~even, left_possessive),
            ),
        ]
        space, after = prepend, true  # default: prepend_space + token, then " "
        for applies, rule_space, rule_after in reversed(rules):
            space = tf.where(applies, rule_space, space)
            after = tf.where(applies, rule_after, after)
        counted = tf.logical_and(is_quote, ~left_possessive)
        counted = tf.logical_and(counted, token["valid"])
        bump = tf.one_hot(tf.maximum(key, 0), quote_keys, dtype=tf.int32)
        counts = counts + bump * tf.cast(counted, tf.int32)[:, None]
        prepend = tf.where(token["valid"], after, prepend)
        return prepend, counts, tf.logical_and(space, token["valid"])

    initial = (
        tf.ones([batch], tf.bool),
        tf.zeros([batch, quote_keys], tf.int32),
        tf.zeros([batch], tf.bool),
    )
    _, _, spaces = tf.scan(step, static, initializer=initial)
    return tf.transpose(spaces, [1, 0])


class WordCodec(tf.Module):
    """``WordTokenizer`` in graph ops: standardise, split, look up; Moses on the way out."""

    def __init__(self, tokenizer: WordTokenizer, name: str):
        super().__init__(name=f"{name}_word_codec")
        if tokenizer.language in UNSUPPORTED_DETOKENIZER_LANGUAGES:
            raise GraphTextError(
                f"the word tokenizer's language {tokenizer.language!r} has Moses "
                "detokenisation rules the export does not implement (unsupported: "
                f"{', '.join(UNSUPPORTED_DETOKENIZER_LANGUAGES)}); use a sentencepiece run"
            )
        self.lowercase = tokenizer.lowercase
        self.french = tokenizer.language == "fr"
        self._standardize = make_standardizer(
            tokenizer.lowercase, tokenizer.user_symbols, tokenizer.language
        )
        vocabulary = tokenizer.vocabulary
        # TextVectorization's table: ids from 2 on are the vocabulary, anything else UNK.
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(vocabulary[2:]),
                tf.range(2, len(vocabulary), dtype=tf.int32),
            ),
            default_value=UNK,
        )
        self.pieces = tf.constant(vocabulary)
        features, self.quote_keys = moses_features(vocabulary, tokenizer.language)
        self.features = tf.constant(features)

    def encode(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Normalised texts (``normalize_graph``, not lower-cased) -> ragged ids."""
        return tf.ragged.map_flat_values(
            self.table.lookup, tf.strings.split(self._standardize(texts))
        )

    def decode(self, ids: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
        """``clean_ids`` output -> detokenised strings, as ``WordTokenizer.decode``."""
        pieces = tf.gather(self.pieces, ids)
        spaces = moses_spaces(tf.gather(self.features, ids), lengths, self.quote_keys)
        valid = tf.range(tf.shape(ids)[1])[None, :] < lengths[:, None]
        pieces = tf.where(spaces, tf.strings.join([" ", pieces]), pieces)
        text = tf.strings.reduce_join(tf.where(valid, pieces, ""), axis=1)
        text = tf.strings.strip(text)
        if not self.french:  # WordTokenizer.decode's « » fix-up
            text = tf.strings.regex_replace(text, r"\s+»", "»")
            text = tf.strings.regex_replace(text, r"«\s+", "«")
        return text


# ---------------------------------------------------------------------------------------
# SentencePiece


class SentencePieceCodec(tf.Module):
    """``SentencePieceTokenizer`` in graph ops (TensorFlow Text's SentencePiece kernel)."""

    def __init__(self, tokenizer: SentencePieceTokenizer, name: str):
        super().__init__(name=f"{name}_sentencepiece_codec")
        import tensorflow_text as tf_text

        self.lowercase = tokenizer.lowercase
        self.vocab_size = tokenizer.vocab_size
        # The kernel shares its model by op name: a loaded SavedModel with two unnamed
        # tokenizers would run both with one model. The name keeps them apart.
        self.tokenizer = tf_text.SentencepieceTokenizer(
            model=tokenizer.model_proto, out_type=tf.int32, name=f"{name}_sentencepiece"
        )

    def encode(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Normalised texts (``normalize_graph``, not lower-cased) -> ragged ids."""
        if self.lowercase:
            texts = tf.strings.lower(texts, encoding="utf-8")
        return self.tokenizer.tokenize(texts)

    def decode(self, ids: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
        """``clean_ids`` output -> detokenised strings, as ``SentencePieceTokenizer.decode``."""
        ids = tf.where(tf.logical_or(ids < 0, ids >= self.vocab_size), UNK, ids)
        return self.tokenizer.detokenize(tf.RaggedTensor.from_tensor(ids, lengths=lengths))


def graph_codec(tokenizer: Tokenizer, name: str) -> WordCodec | SentencePieceCodec:
    """The graph twin of a loaded tokenizer (``name``: unique within one export)."""
    if isinstance(tokenizer, WordTokenizer):
        return WordCodec(tokenizer, name)
    if isinstance(tokenizer, SentencePieceTokenizer):
        return SentencePieceCodec(tokenizer, name)
    raise GraphTextError(f"no graph version of a {type(tokenizer).__name__}")
