"""``python -m seq2seq.study --preset NAME --output DIR [--steps N | --budget-minutes M]``

Trains a grid of architecture variants on the same data with the same seed and budget,
measures them, runs the long-dependency probe and writes a Markdown report with plots and
CSV/JSON numbers. ``--resume`` finishes or extends a study without retraining what is done.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from seq2seq.cli import quiet
from seq2seq.config import ConfigError, preset_names
from seq2seq.study.settings import (
    DEFAULT_GRID,
    GRAMMAR,
    PROBE_TASKS,
    Budget,
    ProbeError,
    ProbeSettings,
    StudyError,
    StudySettings,
    VariantError,
    load_settings,
    parse_variants,
)

DEFAULT_STEPS = 400
DEFAULT_EVALS = 10
DEFAULT_LENGTHS = "10,20,40,80"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m seq2seq.study",
        description="Compare recurrent architectures on the same data at the same budget. "
        "With --resume, every setting not given is the saved study's.",
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
        help="minutes of training per variant (after tracing) instead of a step count",
    )
    parser.add_argument(
        "--variants",
        help=f"comma-separated names, {GRAMMAR} (default: the {len(DEFAULT_GRID)}-variant grid: "
        f"{', '.join(DEFAULT_GRID)})",
    )
    parser.add_argument(
        "--evals", type=int, help=f"dev-loss evaluations per variant (default {DEFAULT_EVALS})"
    )
    parser.add_argument(
        "--target-loss",
        type=float,
        help="dev loss for the 'steps to reach' column (default: the median final dev loss)",
    )
    parser.add_argument("--probe-task", choices=PROBE_TASKS, help="copy (default) or reverse")
    parser.add_argument(
        "--probe-lengths", help=f"comma-separated sequence lengths (default {DEFAULT_LENGTHS})"
    )
    parser.add_argument(
        "--probe-steps",
        type=int,
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


def given(value, fallback):
    return fallback if value is None else value


def settings_from_args(args: argparse.Namespace) -> StudySettings:
    """The study asked for: the defaults (or, with --resume, the saved study) plus what the
    command line gives. Checked here, before anything is written."""
    saved = load_settings(Path(args.output)) if args.resume else None
    if saved is None and not (args.preset or args.config):
        raise StudyError("give --preset NAME and/or --config FILE (the data and model size)")
    overrides = list(args.overrides)
    if args.data_dir:
        overrides.append(f"data.data_dir={args.data_dir}")
    if saved and not (args.preset or args.config or overrides):
        preset, config_file, overrides = saved.preset, saved.config_file, list(saved.overrides)
    else:
        preset, config_file = args.preset, args.config
    budget = saved.budget if saved else Budget(steps=DEFAULT_STEPS, evals=DEFAULT_EVALS)
    if args.steps is not None or args.budget_minutes is not None:
        budget = Budget(args.steps, args.budget_minutes, budget.evals)
    budget = Budget(budget.steps, budget.minutes, given(args.evals, budget.evals))
    probe = saved.probe if saved else ProbeSettings()
    probe_given = any(
        value is not None for value in (args.probe_task, args.probe_lengths, args.probe_steps)
    )
    if args.probe_steps == 0:
        probe = None
    elif probe_given:
        base = probe or ProbeSettings()
        probe = ProbeSettings(
            task=given(args.probe_task, base.task),
            lengths=lengths(args.probe_lengths) if args.probe_lengths else base.lengths,
            steps=given(args.probe_steps, base.steps),
        )
    names = args.variants.split(",") if args.variants else saved.variants if saved else DEFAULT_GRID
    variants = tuple(v.name for v in parse_variants(list(names)))
    settings = StudySettings(
        preset,
        config_file,
        tuple(overrides),
        variants,
        budget,
        probe,
        given(args.target_loss, saved.target_loss if saved else None),
    )
    settings.budget.check()
    if probe:
        probe.check()
    settings.config()  # a bad preset or override fails here, before anything is written
    return settings


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet.setup()  # before TensorFlow loads
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Every variant is a new model, so tf.function warns about "excessive retracing".
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    from seq2seq.data.corpora.spec import CorpusError
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
