"""``python -m seq2seq.study --preset NAME --output DIR [--steps N | --budget-minutes M]``

Trains a grid of architecture variants on the same data with the same seed and budget,
measures them, runs the long-dependency probe and writes a Markdown report with plots and
CSV/JSON numbers. ``--resume`` finishes or extends a study without retraining what is done.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from seq2seq.config import ConfigError, preset_names
from seq2seq.study.probe import TASKS, ProbeError, ProbeSettings
from seq2seq.study.settings import Budget, StudyError, StudySettings
from seq2seq.study.variants import DEFAULT_GRID, GRAMMAR, VariantError, parse_variants

DEFAULT_STEPS = 300


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m seq2seq.study",
        description="Compare recurrent architectures on the same data at the same budget.",
    )
    parser.add_argument("--preset", help=f"data and model size: {', '.join(preset_names())}")
    parser.add_argument("--config", help="a YAML config file instead of (or on top of) a preset")
    parser.add_argument("--output", required=True, help="the study folder")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument(
        "--steps", type=int, help=f"training steps per variant (default {DEFAULT_STEPS})"
    )
    budget.add_argument(
        "--budget-minutes",
        type=float,
        metavar="M",
        help="minutes of training per variant instead of a step count",
    )
    parser.add_argument(
        "--variants",
        default=",".join(DEFAULT_GRID),
        help=f"comma-separated names, {GRAMMAR} (default: the {len(DEFAULT_GRID)}-variant grid)",
    )
    parser.add_argument(
        "--evals", type=int, default=10, help="dev-loss evaluations per variant (default 10)"
    )
    parser.add_argument(
        "--target-loss",
        type=float,
        help="dev loss for the 'steps to reach' column (default: the median final dev loss)",
    )
    parser.add_argument("--probe-task", choices=TASKS, default="copy")
    parser.add_argument(
        "--probe-lengths",
        default="10,20,40,80",
        help="comma-separated sequence lengths (default 10,20,40,80)",
    )
    parser.add_argument(
        "--probe-steps",
        type=int,
        default=ProbeSettings.steps,
        help=f"training steps per cell and length (default {ProbeSettings.steps}; 0 skips "
        "the probe)",
    )
    parser.add_argument("--resume", action="store_true", help="finish or extend --output")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--data-dir", help="local corpus folder (default: $SEQ2SEQ_DATA_DIR)")
    parser.add_argument(
        "overrides", nargs="*", help="section.field=value, e.g. model.hidden_size=64"
    )
    return parser.parse_args(argv)


def lengths(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ProbeError(f"--probe-lengths {text!r}: expected numbers like 10,20,40") from None
    return tuple(sorted(set(values)))


def settings_from_args(args: argparse.Namespace) -> StudySettings:
    if not (args.preset or args.config):
        raise StudyError("give --preset NAME and/or --config FILE (the data and model size)")
    overrides = list(args.overrides)
    if args.data_dir:
        overrides.append(f"data.data_dir={args.data_dir}")
    steps = DEFAULT_STEPS if args.steps is None and args.budget_minutes is None else args.steps
    budget = Budget(steps=steps, minutes=args.budget_minutes, evals=args.evals)
    probe = None
    if args.probe_steps != 0:
        probe = ProbeSettings(
            task=args.probe_task, lengths=lengths(args.probe_lengths), steps=args.probe_steps
        )
    variants = tuple(v.name for v in parse_variants(args.variants.split(",")))
    settings = StudySettings(
        args.preset, args.config, tuple(overrides), variants, budget, probe, args.target_loss
    )
    settings.budget.check()
    if probe:
        probe.check()
    settings.config()  # a bad preset or override fails here, before anything is written
    return settings


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Every variant is a new model, so tf.function warns about "excessive retracing".
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    from seq2seq.corpora.errors import CorpusError
    from seq2seq.runs import RunError

    try:
        settings = settings_from_args(args)
        from seq2seq.study.run import run_study

        results = run_study(settings, Path(args.output), args.resume, not args.no_progress)
    except (ConfigError, CorpusError, RunError, StudyError, VariantError, ProbeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    report(Path(args.output), results)
    return 0


def report(output: Path, results: dict) -> None:
    print(f"report: {output / 'report.md'}")
    for row in results["table"]:
        loss = row["dev_loss"]
        bleu = row["dev_bleu"]
        print(
            f"  {row['variant']:<26} dev loss {loss if loss is None else f'{loss:.3f}'}"
            f"  BLEU {bleu if bleu is None else f'{bleu:.1f}'}"
        )
    for row in results["probe"]:
        accuracy = 100 * row["accuracy"]
        print(f"  probe {row['cell']:<5} L={row['length']:<4} accuracy {accuracy:.0f}%")


if __name__ == "__main__":
    sys.exit(main())
