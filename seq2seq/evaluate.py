"""``python -m seq2seq.evaluate``: score a trained run on a split or a pairs file.

Translation runs get corpus BLEU and chrF (sacrebleu defaults: cased, 13a tokenisation;
the signatures are printed and saved) plus the model's loss and perplexity on the same
pairs. Dialogue runs (corpus ``daily_dialog`` / ``cornell_dialogs``, or any run with
``data.context_turns > 0``, or ``--task dialogue``) get perplexity, distinct-1/2, the
average reply length, BLEU for reference and the degenerate-model check of
``seq2seq.metrics`` (a WARNING when the share of inputs answered with a stock reply is
above ``--degenerate-threshold``).

Loss is teacher-forced, masked cross-entropy without label smoothing, averaged over all
target tokens (END included): ``perplexity = exp(loss)``. Sources are shortened to
``data.max_source_length`` tokens as the translator does when decoding (a dialogue input
loses its oldest context turns first, then the start of the message); pairs are never
dropped for length.

Everything lands in ``--output-dir`` (default ``<run>/eval-<split>/`` or
``<run>/eval-<pairs file stem>/``): ``hypotheses.txt`` (one output per input line, in
order) and ``report.json`` (metrics, signatures, decode settings, bad lines).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seq2seq.config import ConfigError, DecodeConfig, build_section, load_run_config, validate
from seq2seq.corpora.errors import CorpusError
from seq2seq.corpora.readers import LineReport, read_anki
from seq2seq.metrics import (
    DEFAULT_DEGENERATE_THRESHOLD,
    DEFAULT_STOCK_FRACTION,
    average_words,
    dialogue_metrics,
    distinct_n,
)
from seq2seq.runs import RunError, open_run

__all__ = [
    "EvaluationError",
    "dialogue_metrics",
    "distinct_n",
    "evaluate_run",
    "main",
    "read_pairs_file",
]

log = logging.getLogger(__name__)

DIALOGUE_CORPORA = ("daily_dialog", "cornell_dialogs")
TASKS = ("auto", "translation", "dialogue")
SPLITS = ("test", "dev", "train")
SHOWN_BAD_LINES = 20
# Evaluation inputs come from files, not users: accept any length (the model input is
# still cut to data.max_source_length tokens).
MAX_INPUT_CHARS = 1_000_000


class EvaluationError(ValueError):
    """The evaluation cannot run as asked (bad pairs file, empty split, bad option)."""


def read_pairs_file(
    path: str | Path, reverse: bool = False, skip_bad_lines: bool = False
) -> tuple[list[tuple[str, str]], LineReport]:
    """(source, reference) pairs from an Anki-layout file: English<TAB>other[<TAB>note].

    ``reverse`` (the run's ``data.reverse``) makes the second column the source. Bad lines
    (missing tab, empty side, too many columns, undecodable bytes) are listed as
    ``file:line: reason``: they raise ``EvaluationError`` unless ``skip_bad_lines``, in
    which case they are logged and returned in the report (never dropped silently).
    """
    path = Path(path)
    if not path.is_file():
        raise EvaluationError(f"pairs file not found: {path}")
    report = LineReport()
    pairs = []
    for _, english, other in read_anki(path, report):
        pairs.append((other, english) if reverse else (english, other))
    if report.bad and not skip_bad_lines:
        raise EvaluationError(
            f"{path}: {len(report.bad)} of {report.total} lines are malformed "
            f"(expected English<TAB>other[<TAB>attribution]):\n"
            f"{format_bad_lines(report)}\n"
            "Fix them, or pass --skip-bad-lines to evaluate on the other lines."
        )
    for bad in report.bad:
        log.warning("skipping bad line %s", bad)
    if not pairs:
        raise EvaluationError(f"{path}: no usable pairs ({report.summary()})")
    return pairs, report


def format_bad_lines(report: LineReport) -> str:
    lines = [f"  {bad}" for bad in report.bad[:SHOWN_BAD_LINES]]
    if len(report.bad) > SHOWN_BAD_LINES:
        lines.append(f"  ... and {len(report.bad) - SHOWN_BAD_LINES} more")
    return "\n".join(lines)


def is_dialogue(config: Any, task: str = "auto") -> bool:
    if task not in TASKS:
        raise EvaluationError(f"task is {task!r}; allowed: {', '.join(TASKS)}")
    if task != "auto":
        return task == "dialogue"
    return config.data.corpus in DIALOGUE_CORPORA or config.data.context_turns > 0


def load_translator(run_dir: str | Path):
    """Open the run (``RunError`` when missing or incompatible) and load its model once."""
    paths = open_run(run_dir)
    from seq2seq.translator import Translator

    return Translator.from_run(paths.root, max_input_chars=MAX_INPUT_CHARS)


def split_pairs(config: Any, split: str) -> list[tuple[str, str]]:
    if split not in SPLITS:
        raise EvaluationError(f"split is {split!r}; allowed: {', '.join(SPLITS)}")
    from seq2seq.corpora.loading import load_splits

    pairs = load_splits(config.data)[split]
    if not pairs:
        raise EvaluationError(f"the {split} split of {config.data.corpus!r} is empty")
    return [(pair.source, pair.target) for pair in pairs]


def decode_all(
    translator: Any, sources: Sequence[str], batch_size: int, decode: dict[str, Any]
) -> tuple[list[str], int]:
    """Outputs for every source, in order (decoded in length-sorted batches for speed),
    and how many sources were cut to ``data.max_source_length``."""
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    outputs = [""] * len(sources)
    truncated = 0
    started = time.time()
    from seq2seq.translator import InputError, seeded_overrides

    for number, start in enumerate(range(0, len(order), batch_size)):
        rows = order[start : start + batch_size]
        try:
            results = translator.translate(
                [sources[i] for i in rows], **seeded_overrides(decode, number)
            )
        except InputError as error:  # e.g. a source that normalises to nothing
            for i in rows:
                try:
                    translator.check_input(sources[i])
                except InputError as bad:
                    raise EvaluationError(f"pair {i + 1} ({sources[i]!r}): {bad}") from bad
            raise EvaluationError(f"cannot decode the inputs: {error}") from error
        for i, result in zip(rows, results, strict=True):
            outputs[i] = result.text
            truncated += bool(getattr(result, "truncated", False))
        done = min(start + batch_size, len(order))
        if done == len(order) or (start // batch_size) % 20 == 19:
            log.info("decoded %d/%d (%.0fs)", done, len(order), time.time() - started)
    return outputs, truncated


def teacher_forced_loss(
    translator: Any, sources: Sequence[str], targets: Sequence[str], batch_size: int = 64
) -> dict[str, Any]:
    """Token-weighted masked cross-entropy (no label smoothing) and perplexity."""
    import numpy as np
    import tensorflow as tf

    from seq2seq.text import END, START

    source_ids = translator.source_ids(list(sources))  # shortened as when decoding
    target_ids = translator.target_tokenizer.encode_batch(list(targets))
    rows = [(s, t) for s, t in zip(source_ids, target_ids, strict=True) if s and t]
    rows.sort(key=lambda row: (len(row[0]), len(row[1])))
    total, tokens = 0.0, 0
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        width = max(len(s) for s, _ in batch)
        length = max(len(t) for _, t in batch) + 1
        source = np.zeros((len(batch), width), np.int32)
        target_in = np.zeros((len(batch), length), np.int32)
        target_out = np.zeros((len(batch), length), np.int32)
        for r, (s, t) in enumerate(batch):
            source[r, : len(s)] = s
            target_in[r, : len(t) + 1] = [START, *t]
            target_out[r, : len(t) + 1] = [*t, END]
        logits = translator.model((source, target_in), training=False)
        log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1).numpy()
        picked = np.take_along_axis(log_probs, target_out[..., None], axis=-1)[..., 0]
        mask = target_out != 0
        total -= float(picked[mask].sum(dtype=np.float64))
        tokens += int(mask.sum())
    loss = total / tokens if tokens else float("nan")
    return {
        "loss": loss,
        "perplexity": math.exp(min(loss, 50.0)) if tokens else float("nan"),
        "loss_tokens": tokens,
        "loss_pairs": len(rows),
        "loss_skipped_pairs": len(source_ids) - len(rows),
    }


def corpus_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """sacrebleu corpus BLEU and chrF with default settings, with their signatures."""
    from sacrebleu.metrics import BLEU, CHRF

    result: dict[str, Any] = {}
    for name, metric in (("bleu", BLEU()), ("chrf", CHRF())):
        score = metric.corpus_score(list(hypotheses), [list(references)])
        signature = str(metric.get_signature())
        result[name] = score.score
        result[f"{name}_signature"] = signature
        result[f"{name}_text"] = score.format(signature=signature)
    return result


def default_output_dir(run_dir: Path, split: str, pairs_file: str | Path | None) -> Path:
    name = f"eval-{Path(pairs_file).stem}" if pairs_file else f"eval-{split}"
    return run_dir / name


def evaluate_run(
    run_dir: str | Path,
    split: str = "test",
    pairs_file: str | Path | None = None,
    *,
    max_sentences: int | None = None,
    output_dir: str | Path | None = None,
    task: str = "auto",
    degenerate_threshold: float = DEFAULT_DEGENERATE_THRESHOLD,
    stock_fraction: float = DEFAULT_STOCK_FRACTION,
    skip_bad_lines: bool = False,
    batch_size: int = 64,
    translator: Any = None,
    **decode: Any,
) -> dict[str, Any]:
    """Evaluate the run in ``run_dir``; returns the report (also written as
    ``report.json`` with ``hypotheses.txt`` in ``output_dir``).

    ``decode`` holds ``DecodeConfig`` overrides (method, beam_size, temperature, ...).
    Raises ``RunError`` (missing/incompatible run), ``EvaluationError`` (bad pairs file or
    options), ``CorpusError`` (split data not found) and ``ConfigError`` (bad decode
    settings).
    """
    if max_sentences is not None and max_sentences < 1:
        raise EvaluationError(f"max_sentences must be >= 1, got {max_sentences}")
    if batch_size < 1:
        raise EvaluationError(f"batch_size must be >= 1, got {batch_size}")
    started = time.time()
    if translator is None:
        # Check the run and the pairs file before the (slow) model load.
        paths = open_run(run_dir)
        try:
            config = load_run_config(paths.config)
        except ConfigError as error:
            raise RunError(f"{paths.root}: its config.yaml cannot be used: {error}") from error
    else:
        config = translator.config
    dialogue = is_dialogue(config, task)
    report = LineReport()
    if pairs_file is not None:
        pairs, report = read_pairs_file(pairs_file, config.data.reverse, skip_bad_lines)
        origin: dict[str, Any] = {"pairs_file": str(pairs_file)}
    else:
        pairs = split_pairs(config, split)
        origin = {"split": split}
    if translator is None:
        translator = load_translator(run_dir)
    settings = dataclasses.asdict(translator.decode_config(**decode))  # ConfigError if bad
    available = len(pairs)
    pairs = pairs[:max_sentences] if max_sentences else pairs
    sources = [source for source, _ in pairs]
    references = [target for _, target in pairs]

    hypotheses, truncated = decode_all(translator, sources, batch_size, decode)
    scores = corpus_scores(hypotheses, references)
    scores.update(teacher_forced_loss(translator, sources, references, batch_size))
    if dialogue:
        scores.update(
            dialogue_metrics(
                sources,
                hypotheses,
                stock_fraction=stock_fraction,
                degenerate_threshold=degenerate_threshold,
            )
        )
        scores["reference_distinct_1"] = distinct_n(references, 1)
        scores["reference_distinct_2"] = distinct_n(references, 2)
        scores["reference_avg_words"] = average_words(references)

    folder = (
        Path(output_dir) if output_dir else default_output_dir(Path(run_dir), split, pairs_file)
    )
    result: dict[str, Any] = {
        "run": str(run_dir),
        "task": "dialogue" if dialogue else "translation",
        **origin,
        "pairs": len(pairs),
        "pairs_available": available,
        "truncated_sources": truncated,
        "bad_lines": [str(bad) for bad in report.bad],
        "decode": settings,
        "metrics": scores,
        "output_dir": str(folder),
        "seconds": round(time.time() - started, 2),
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hypotheses.txt").write_text(
        "".join(" ".join(h.splitlines()) + "\n" for h in hypotheses), encoding="utf-8"
    )
    (folder / "report.json").write_text(
        json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8"
    )
    return result


def format_report(result: dict[str, Any]) -> str:
    """The human-readable summary the command prints."""
    metrics = result["metrics"]
    where = result.get("pairs_file") or f"{result.get('split')} split"
    lines = [
        f"run: {result['run']} ({result['task']}; {where}: {result['pairs']:,} pairs"
        + (
            f" of {result['pairs_available']:,})"
            if result["pairs_available"] != result["pairs"]
            else ")"
        ),
        "decode: "
        + ", ".join(f"{key}={value}" for key, value in decode_summary(result["decode"]).items()),
        metrics["bleu_text"],
        metrics["chrf_text"],
        f"loss {metrics['loss']:.4f}  perplexity {metrics['perplexity']:.2f}  "
        f"({metrics['loss_tokens']:,} target tokens, teacher-forced, no label smoothing)",
    ]
    if result["task"] == "dialogue":
        lines += [
            f"distinct-1 {metrics['distinct_1']:.4f}  distinct-2 {metrics['distinct_2']:.4f}  "
            f"(references: {metrics['reference_distinct_1']:.4f} / "
            f"{metrics['reference_distinct_2']:.4f})",
            f"average reply length {metrics['avg_reply_words']:.2f} words "
            f"(references: {metrics['reference_avg_words']:.2f})",
            f"degenerate share {metrics['degenerate_share']:.3f} "
            f"({metrics['distinct_replies']:,} distinct replies to "
            f"{metrics['distinct_inputs']:,} distinct inputs; threshold "
            f"{metrics['degenerate_threshold']})",
        ]
    if result["truncated_sources"]:
        lines.append(f"{result['truncated_sources']:,} inputs were cut to the model's max length")
    if result["bad_lines"]:
        lines.append(f"{len(result['bad_lines']):,} bad lines skipped (listed in report.json)")
    lines.append(f"wrote {result['output_dir']}/hypotheses.txt and report.json")
    return "\n".join(lines)


def decode_summary(settings: dict[str, Any]) -> dict[str, Any]:
    method = settings.get("method")
    keys = ["method", "max_length", "min_length"]
    if method == "beam":
        keys += ["beam_size", "length_penalty"]
    if method == "sample":
        keys += ["temperature", "top_k", "top_p", "seed"]
    keys += ["no_repeat_ngram_size", "repetition_penalty"]
    return {key: settings[key] for key in keys if key in settings}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m seq2seq.evaluate",
        description="Score a trained run: BLEU/chrF and perplexity for translation; "
        "perplexity, distinct-n, reply length and a degenerate-reply check for dialogue.",
    )
    parser.add_argument("--model", required=True, metavar="RUN", help="run folder")
    parser.add_argument("--split", choices=SPLITS, default="test", help="default: test")
    parser.add_argument(
        "--pairs",
        metavar="FILE.tsv",
        help="evaluate on this file instead: English<TAB>other[<TAB>attribution] "
        "(the run's data.reverse decides which side is the source)",
    )
    parser.add_argument("--max-sentences", type=int, metavar="N", help="the first N pairs only")
    parser.add_argument("--output-dir", metavar="DIR", help="default: <run>/eval-<split>/")
    parser.add_argument("--task", choices=TASKS, default="auto", help="default: from the run")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--skip-bad-lines",
        action="store_true",
        help="evaluate on the good lines of a --pairs file with malformed lines "
        "(they are still listed)",
    )
    parser.add_argument(
        "--degenerate-threshold",
        type=float,
        default=DEFAULT_DEGENERATE_THRESHOLD,
        help="dialogue: warn when more than this share of distinct inputs get a stock "
        f"reply (default {DEFAULT_DEGENERATE_THRESHOLD})",
    )
    parser.add_argument(
        "--stock-fraction",
        type=float,
        default=DEFAULT_STOCK_FRACTION,
        help="dialogue: a reply given to at least this share of distinct inputs (and to "
        f"at least 2) is a stock reply (default {DEFAULT_STOCK_FRACTION})",
    )
    add_decode_arguments(parser)
    return parser.parse_args(argv)


def add_decode_arguments(parser: argparse.ArgumentParser) -> None:
    """Decoding flags shared by the evaluate and chat commands (default: the run's config)."""
    group = parser.add_argument_group("decoding (default: the run's decode settings)")
    group.add_argument("--method", choices=("greedy", "beam", "sample"))
    group.add_argument("--beam", type=int, metavar="N", help="beam search with N beams")
    group.add_argument("--length-penalty", type=float)
    group.add_argument("--temperature", type=float)
    group.add_argument("--top-k", type=int)
    group.add_argument("--top-p", type=float)
    group.add_argument("--seed", type=int)
    group.add_argument("--max-length", type=int)
    group.add_argument("--min-length", type=int)
    group.add_argument("--no-repeat-ngram-size", type=int)
    group.add_argument("--repetition-penalty", type=float)


def decode_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``DecodeConfig`` overrides from the decoding flags that were given."""
    if args.beam is not None and args.method not in (None, "beam"):
        raise ConfigError(f"--beam {args.beam} needs beam search, not --method {args.method}")
    fields = (
        "method",
        "length_penalty",
        "temperature",
        "top_k",
        "top_p",
        "seed",
        "max_length",
        "min_length",
        "no_repeat_ngram_size",
        "repetition_penalty",
    )
    overrides = {name: getattr(args, name) for name in fields if getattr(args, name) is not None}
    if args.beam is not None:
        overrides.update(method="beam", beam_size=args.beam)
    return overrides


def check_decode(config: Any, overrides: dict[str, Any]) -> None:
    """Validate decoding overrides against a run's config without loading the model
    (``ConfigError`` naming the field); the translator checks them again when used."""
    values = {**dataclasses.asdict(config.decode), **overrides}
    decode = build_section("decode", DecodeConfig, values, "decode options")
    validate(config.replace(decode=decode))


def quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_tensorflow()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        # A missing or incompatible run, or bad flags, fail before TensorFlow loads.
        overrides = decode_overrides(args)
        check_decode(load_run_config(open_run(args.model).config), overrides)
    except (RunError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        result = evaluate_run(
            args.model,
            split=args.split,
            pairs_file=args.pairs,
            max_sentences=args.max_sentences,
            output_dir=args.output_dir,
            task=args.task,
            degenerate_threshold=args.degenerate_threshold,
            stock_fraction=args.stock_fraction,
            skip_bad_lines=args.skip_bad_lines,
            batch_size=args.batch_size,
            **overrides,
        )
    except (RunError, EvaluationError, CorpusError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_report(result))
    warning = result["metrics"].get("warning")
    if warning:
        print(f"WARNING: {warning}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
