"""``python -m seq2seq.evaluate``: score a trained run on a split or a pairs file.

Translation runs get corpus BLEU and chrF (sacrebleu defaults, signatures printed), loss
and perplexity; dialogue runs add per-sentence BLEU-1/2 (defined in ``seq2seq.inference.metrics``),
distinct-1/2, the average reply length and the degenerate-reply check (a WARNING above
``--degenerate-threshold``), for any decoding setting including MMI reranking
(``--mmi-lambda``, with the backward run ``<run>-backward`` or ``--backward-model``).
The work is done by ``seq2seq.inference.evaluation``; outputs land in ``--output-dir`` (default
``<run>/eval-<split>/``): ``hypotheses.txt`` and ``report.json``. Bad arguments, a bad run
folder or a bad pairs file print ``error: ...`` and exit with status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from seq2seq.cli import quiet
from seq2seq.config import ConfigError
from seq2seq.data.corpora.spec import CorpusError
from seq2seq.inference.evaluation import SPLITS, TASKS, EvaluationError, evaluate_run, run_config
from seq2seq.inference.glossary import GlossaryError, check_method, read_glossary
from seq2seq.inference.metrics import DEFAULT_DEGENERATE_THRESHOLD, DEFAULT_STOCK_FRACTION
from seq2seq.inference.mmi import require_backward
from seq2seq.runs import RunError
from seq2seq.search.options import (
    MMI_FIELDS,
    OPTIONS,
    add_decode_arguments,
    overrides_from_args,
    resolve_decode,
)


def format_report(result: dict[str, Any]) -> str:
    """The human-readable summary the command prints."""
    metrics = result["metrics"]
    where = result.get("pairs_file") or f"{result.get('split')} split"
    lines = [
        f"run: {' + '.join(result.get('ensemble') or [result['run']])} "
        f"({result['task']}; {where}: {result['pairs']:,} pairs"
        + (
            f" of {result['pairs_available']:,})"
            if result["pairs_available"] != result["pairs"]
            else ")"
        ),
        "decode: " + ", ".join(f"{key}={value}" for key, value in decode_summary(result["decode"])),
        metrics["bleu_text"],
        metrics["chrf_text"],
        f"loss {metrics['loss']:.4f}  perplexity {metrics['perplexity']:.2f}  "
        f"({metrics['loss_tokens']:,} target tokens, teacher-forced, no label smoothing)",
    ]
    if result["task"] == "dialogue":
        lines += [
            f"BLEU-1 {metrics['bleu_1']:.4f}  BLEU-2 {metrics['bleu_2']:.4f}  "
            f"({metrics['bleu_n_definition']})",
            f"BLEU-1 {metrics['bleu_1_nltk']:.4f}  BLEU-2 {metrics['bleu_2_nltk']:.4f}  "
            f"({metrics['bleu_n_nltk_definition']})",
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
    carry = metrics.get("carry")
    if carry and carry["terms"]:
        lines.append(
            f"names and numbers carried {carry['carried']:,}/{carry['terms']:,} "
            f"({carry['carry_rate']:.1%}; words of {carry['sentences_with_terms']:,} sources "
            "kept unchanged by their reference, with a digit or a capital)"
        )
    glossary = metrics.get("glossary")
    if glossary:
        rate = glossary["hit_rate"]
        lines.append(
            f"glossary {glossary['file']}: {glossary['sentences']:,} sources hold a source "
            f"term; {glossary['hits']:,}/{glossary['constraints']:,} target terms in the output"
            + (f" ({rate:.1%})" if rate is not None else "")
        )
    if result["truncated_sources"]:
        lines.append(f"{result['truncated_sources']:,} inputs were cut to the model's max length")
    if result["bad_lines"]:
        lines.append(f"{len(result['bad_lines']):,} bad lines skipped (listed in report.json)")
    lines.append(f"wrote {result['output_dir']}/hypotheses.txt and report.json")
    return "\n".join(lines)


def decode_summary(settings: dict[str, Any]) -> list[tuple[str, Any]]:
    """The settings that shape this search (a beam size means nothing to sampling)."""
    method = settings["method"]
    shown = [("method", method)]
    mmi = settings.get("mmi_lambda") is not None
    for option in OPTIONS:
        if option.field in MMI_FIELDS and not mmi:
            continue
        if method in option.methods and option.field in settings:
            shown.append((option.field, settings[option.field]))
    for flag in ("replace_unk", "copy_names"):  # switches: shown when on
        if settings.get(flag):
            shown.append((flag, True))
    return shown


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m seq2seq.evaluate",
        description="Score a trained run: BLEU/chrF and perplexity for translation; "
        "perplexity, distinct-n, reply length and a degenerate-reply check for dialogue.",
    )
    parser.add_argument(
        "--model",
        required=True,
        action="append",
        metavar="RUN",
        help="run folder; give it several times to evaluate an ensemble of runs that share "
        "their vocabularies (docs/ensembles.md)",
    )
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
    parser.add_argument(
        "--glossary",
        metavar="FILE",
        help="source term<TAB>target term lines that constrain beam search "
        "(docs/decoding.md); the report gives the share of target terms in the output",
    )
    add_decode_arguments(parser, n_best=False, mmi=True)
    quiet.add_verbose_argument(parser)
    args = parser.parse_args(argv)
    args.models, args.model = args.model, args.model[0]  # --model A --model B: an ensemble
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet.setup(args.verbose)  # before TensorFlow loads
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        # A missing or incompatible run, or bad flags, fail before TensorFlow loads.
        config = run_config(args.model)
        if len(args.models) > 1:
            from seq2seq.inference.ensemble import check_members

            check_members(args.models)
        decode = resolve_decode(config, overrides_from_args(args))
        if decode.mmi_lambda is not None:
            require_backward(args.model, config, args.backward_model)
        glossary = None
        if args.glossary:
            glossary = read_glossary(args.glossary)
            check_method(args.glossary, decode.method)
    except (RunError, ConfigError, GlossaryError) as error:
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
            backward_model=args.backward_model,
            ensemble=args.models,
            decode=decode,
            glossary=glossary,
        )
    except (
        RunError,
        EvaluationError,
        CorpusError,  # PreparedDataError too
        ConfigError,
        GlossaryError,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_report(result))
    warning = result["metrics"].get("warning")
    if warning:
        print(f"WARNING: {warning}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
