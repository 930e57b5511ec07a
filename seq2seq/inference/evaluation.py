"""Scoring a trained run on a split or a pairs file (the library behind ``seq2seq.evaluate``).

Translation runs get corpus BLEU and chrF (sacrebleu defaults: cased, 13a tokenisation;
the signatures are kept) plus the model's teacher-forced loss and perplexity on the same
pairs. Dialogue runs (a dialogue corpus in the corpus table, any run with
``data.context_turns > 0``, or ``task="dialogue"``) also get per-sentence BLEU-1/2,
distinct-1/2, the average reply length and the degenerate-model check of
``seq2seq.inference.metrics`` (BLEU-n as defined there).

Loss is masked cross-entropy without label smoothing, averaged over all target tokens
(END included): ``perplexity = exp(loss)``. Sources are shortened to
``data.max_source_length`` tokens as the translator does when decoding (a dialogue input
loses its oldest context turns first, then the start of the message); pairs are never
dropped for length.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from seq2seq.config import Config, ConfigError, DecodeConfig, load_run_config
from seq2seq.data.corpora.readers import LineReport, read_anki
from seq2seq.data.corpora.spec import is_dialogue
from seq2seq.inference.carry import carry_report
from seq2seq.inference.glossary import check_method, hit_report, read_glossary
from seq2seq.inference.metrics import (
    BLEU_PROTOCOLS,
    DEFAULT_DEGENERATE_THRESHOLD,
    DEFAULT_STOCK_FRACTION,
    average_words,
    dialogue_metrics,
    distinct_n,
    sentence_bleu_n,
)
from seq2seq.inference.mmi import require_backward
from seq2seq.inference.prediction import corpus_scores, teacher_forced_loss
from seq2seq.runs import RunError, open_run

log = logging.getLogger(__name__)

TASKS = ("auto", "translation", "dialogue")
SPLITS = ("test", "dev", "train")
SHOWN_BAD_LINES = 20
# Evaluation inputs come from files, not users: accept any length (the model input is
# still shortened to data.max_source_length tokens).
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


def resolve_task(config: Config, task: str = "auto") -> str:
    """``translation`` or ``dialogue``: as asked, else what the run was trained on."""
    if task not in TASKS:
        raise EvaluationError(f"task is {task!r}; allowed: {', '.join(TASKS)}")
    if task != "auto":
        return task
    dialogue = is_dialogue(config.data.corpus, config.data.context_turns)
    return "dialogue" if dialogue else "translation"


def run_config(run_dir: str | Path) -> Config:
    """The run's config without loading its model (``RunError`` when unusable)."""
    paths = open_run(run_dir)
    try:
        return load_run_config(paths.config)
    except ConfigError as error:
        raise RunError(f"{paths.root}: its config.yaml cannot be used: {error}") from error


def split_pairs(config: Config, split: str) -> list[tuple[str, str]]:
    if split not in SPLITS:
        raise EvaluationError(f"split is {split!r}; allowed: {', '.join(SPLITS)}")
    from seq2seq.data.prepare import ensure_prepared

    folder = ensure_prepared(config.data)
    if split == "train":  # its text is not kept: the pairs as the tokenizers give them back
        from seq2seq.data.pipeline import read_ids
        from seq2seq.data.tokenizers import load_tokenizer

        source, target = load_tokenizer(folder.source_vocab), load_tokenizer(folder.target_vocab)
        pairs = [
            (source.decode(s), target.decode(t))
            for s, t in zip(*read_ids(folder, "train"), strict=True)
        ]
    else:
        pairs = folder.text_pairs(split)
    if not pairs:
        raise EvaluationError(f"the {split} split of {config.data.corpus!r} is empty")
    return pairs


def decode_sources(
    translator: Any,
    sources: list[str],
    batch_size: int,
    decode: DecodeConfig,
    glossary: Any = None,
) -> tuple[list[str], int]:
    """Every source's best output, in order, and how many sources were cut to length."""
    from seq2seq.inference.translator import InputError

    for number, source in enumerate(sources, start=1):
        try:
            translator.check_input(source, f"pair {number} ({source!r})")
        except InputError as error:  # e.g. a source that normalises to nothing
            raise EvaluationError(str(error)) from error
    results = translator.translate(sources, decode, batch_size=batch_size, glossary=glossary)
    return [r.text for r in results], sum(r.truncated for r in results)


def score(
    translator: Any, sources: list[str], references: list[str], batch_size: int
) -> dict[str, Any]:
    """Teacher-forced loss and perplexity of the references."""
    data = translator.config.data
    return teacher_forced_loss(
        translator.model,
        translator.source_ids(sources),  # shortened as when decoding
        translator.target_tokenizer.encode_batch(references),
        max_source_length=data.max_source_length,
        batch_size=batch_size,
        scorer=translator.scorer,
    )


def reply_metrics(
    sources: list[str],
    hypotheses: list[str],
    references: list[str],
    stock_fraction: float,
    degenerate_threshold: float,
) -> dict[str, Any]:
    """Diversity of the replies, and of the references for comparison."""
    metrics = dialogue_metrics(
        sources,
        hypotheses,
        stock_fraction=stock_fraction,
        degenerate_threshold=degenerate_threshold,
    )
    for protocol, suffix in (("plato", ""), ("nltk", "_nltk")):
        for n in (1, 2):
            metrics[f"bleu_{n}{suffix}"] = sentence_bleu_n(hypotheses, references, n, protocol)
    metrics["bleu_n_definition"] = BLEU_PROTOCOLS["plato"]
    metrics["bleu_n_nltk_definition"] = BLEU_PROTOCOLS["nltk"]
    metrics["reference_distinct_1"] = distinct_n(references, 1)
    metrics["reference_distinct_2"] = distinct_n(references, 2)
    metrics["reference_avg_words"] = average_words(references)
    return metrics


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
    backward_model: str | Path | None = None,
    ensemble: list[str | Path] | None = None,
    decode: DecodeConfig | None = None,
    glossary: str | Path | Any = None,
) -> dict[str, Any]:
    """Evaluate the run in ``run_dir``; returns the report (also written as
    ``report.json`` with ``hypotheses.txt`` in ``output_dir``, by default
    ``<run>/eval-<split>/`` or ``<run>/eval-<pairs file stem>/``).

    ``decode`` is the search, resolved by the caller (``seq2seq.search.options.resolve_decode``;
    default: the run's ``decode`` settings); its ``mmi_lambda`` reranks by MMI with
    ``backward_model``, by default ``<run>-backward``.
    Raises ``RunError`` (missing/incompatible run), ``EvaluationError`` (bad pairs file or
    options), ``CorpusError`` (split data not found) and ``ConfigError`` (bad decode
    settings). Everything is checked before the (slow) model load. ``ensemble``: the runs
    to decode with as one model (``seq2seq.inference.ensemble``), ``run_dir`` first; its
    report goes by default to ``<run>/eval-<split>-ensemble<N>/``. ``glossary`` (a file
    or a ``seq2seq.inference.glossary.Glossary``; beam search only, else ``GlossaryError``)
    constrains the search; the report's ``metrics["glossary"]`` gives its hit rate.
    """
    members = [str(run) for run in ensemble or [run_dir]]
    if len(members) > 1 and str(Path(members[0])) != str(Path(run_dir)):
        raise EvaluationError(f"the ensemble's first run must be {run_dir}, got {members[0]}")
    if max_sentences is not None and max_sentences < 1:
        raise EvaluationError(f"max_sentences must be >= 1, got {max_sentences}")
    if batch_size < 1:
        raise EvaluationError(f"batch_size must be >= 1, got {batch_size}")
    check_share("degenerate_threshold", degenerate_threshold, low_open=False)
    check_share("stock_fraction", stock_fraction, low_open=True)
    name = f"eval-{Path(pairs_file).stem}" if pairs_file else f"eval-{split}"
    if len(members) > 1:
        name += f"-ensemble{len(members)}"
    folder = Path(output_dir) if output_dir else Path(run_dir) / name
    if translator is None:
        open_run(run_dir)  # a missing run is named as such, not as an unwritable folder
        if len(members) > 1:
            from seq2seq.inference.ensemble import check_members

            check_members(members)
    check_writable(folder)  # before the decoding, which can take hours
    started = time.time()
    config = translator.config if translator is not None else run_config(run_dir)
    decode = config.decode if decode is None else decode
    chosen_task = resolve_task(config, task)
    if isinstance(glossary, str | Path):
        glossary = read_glossary(glossary)
    if glossary is not None:
        check_method(glossary.name, decode.method)
    if decode.mmi_lambda is not None and translator is None:
        backward_model = require_backward(run_dir, config, backward_model)
    report = LineReport()
    if pairs_file is not None:
        pairs, report = read_pairs_file(pairs_file, config.data.reverse, skip_bad_lines)
        origin: dict[str, Any] = {"pairs_file": str(pairs_file)}
    else:
        pairs = split_pairs(config, split)
        origin = {"split": split}
    available = len(pairs)
    pairs = pairs[:max_sentences] if max_sentences else pairs
    if translator is None:
        from seq2seq.inference.ensemble import load_ensemble
        from seq2seq.search.searcher import plan_searches

        # XLA only where its compiling pays off, and where the run allows it
        plan = plan_searches(len(pairs), None if config.decode.jit_compile else False)
        translator = load_ensemble(
            members,
            max_input_chars=MAX_INPUT_CHARS,
            jit_compile=plan.jit_compile,
            eager_until_built=plan.eager_until_built,
            backward=backward_model,
        )
    sources = [source for source, _ in pairs]
    references = [target for _, target in pairs]

    checked = translator.check_glossary(glossary, decode)  # its terms spelled by the run
    hypotheses, truncated = decode_sources(translator, sources, batch_size, decode, checked)
    metrics = corpus_scores(hypotheses, references)
    if glossary is not None:
        metrics["glossary"] = hit_report(glossary, sources, hypotheses)
    metrics.update(score(translator, sources, references, batch_size))
    if chosen_task == "dialogue":
        metrics.update(
            reply_metrics(sources, hypotheses, references, stock_fraction, degenerate_threshold)
        )
    else:
        metrics["carry"] = carry_report(sources, references, hypotheses)
    result: dict[str, Any] = {
        "run": str(run_dir),
        **({"ensemble": members} if len(members) > 1 else {}),
        "task": chosen_task,
        **origin,
        "pairs": len(pairs),
        "pairs_available": available,
        "truncated_sources": truncated,
        "bad_lines": [str(bad) for bad in report.bad],
        "decode": dataclasses.asdict(decode),
        "metrics": metrics,
        "output_dir": str(folder),
        "seconds": round(time.time() - started, 2),
    }
    write_report(folder, hypotheses, result)
    return result


def check_share(name: str, value: float, low_open: bool) -> None:
    """A share of inputs: a finite number in [0, 1] (``low_open``: above 0)."""
    low = "0 <" if low_open else "0 <="
    if not math.isfinite(value) or value > 1 or value < 0 or (low_open and value == 0):
        raise EvaluationError(f"{name} is {value}; allowed: a number with {low} x <= 1")


def check_writable(folder: Path) -> None:
    """``EvaluationError`` now, rather than after the decoding, when ``folder`` cannot be
    created or written (read-only, not a folder, no space for a file)."""
    top = None  # the outermost folder this check creates, removed again after it
    if not folder.exists():
        top = folder
        while not top.parent.exists() and top.parent != top:
            top = top.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
        if top is not None:
            for empty in [folder, *folder.parents]:
                empty.rmdir()
                if empty == top:
                    break
    except OSError as error:
        raise EvaluationError(
            f"cannot write the report to {folder}: {error.strerror or error}; "
            "choose another --output-dir"
        ) from None


def write_report(folder: Path, hypotheses: list[str], result: dict[str, Any]) -> None:
    """``hypotheses.txt`` (one line per input, in order) and ``report.json``."""
    try:
        write_report_files(folder, hypotheses, result)
    except OSError as error:
        raise EvaluationError(f"cannot write the report to {folder}: {error}") from None


def write_report_files(folder: Path, hypotheses: list[str], result: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hypotheses.txt").write_text(
        "".join(" ".join(h.splitlines()) + "\n" for h in hypotheses), encoding="utf-8"
    )
    (folder / "report.json").write_text(
        json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8"
    )
