"""``python -m seq2seq.train``: train a model from a preset and/or config file into a run folder.

The same command runs on one machine, as one worker of a cluster (``TF_CONFIG`` set by the
cluster manager), or as N local workers (``--local-workers N``) to try multi-worker training.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import datetime
from pathlib import Path

from seq2seq.cli import quiet
from seq2seq.config import ConfigError, load_config, parse_override, preset_names
from seq2seq.training.interrupts import Terminated, catch_sigterm


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m seq2seq.train",
        description="Train a recurrent encoder-decoder. Settings: preset, then --config, "
        "then section.field=value overrides (e.g. train.epochs=5 model.cell=lstm).",
    )
    parser.add_argument("--preset", help=f"a shipped preset: {', '.join(preset_names())}")
    parser.add_argument("--config", help="a YAML config file (see seq2seq/presets/reference.yaml)")
    parser.add_argument("--output", help="run folder (default: runs/<name>-<timestamp>)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --output with its saved config (train.epochs=N may raise "
        "its epoch budget)",
    )
    parser.add_argument("--data-dir", help="local corpus folder (default: $SEQ2SEQ_DATA_DIR)")
    parser.add_argument(
        "--local-workers",
        type=int,
        metavar="N",
        help="train with N worker processes on this machine (multi-worker data parallelism "
        "over 127.0.0.1)",
    )
    parser.add_argument(
        "--init-from",
        metavar="RUN",
        help="fine-tune: start this new run from RUN's weights, on the corpus and settings "
        "given here; the architecture must be RUN's (docs/finetuning.md)",
    )
    parser.add_argument(
        "--init-vocab",
        choices=("keep", "extend"),
        help="with --init-from: keep RUN's tokenizers (default), or fit new ones on this "
        "corpus and carry the embedding/output rows of the pieces both hold",
    )
    parser.add_argument(
        "--init-optimizer",
        choices=("keep", "reset"),
        help="with --init-from: a fresh optimizer on RUN's best model (reset, default), or "
        "RUN's last training state with its Adam moments (keep)",
    )
    parser.add_argument("overrides", nargs="*", help="section.field=value")
    quiet.add_verbose_argument(parser)
    return parser.parse_intermixed_args(argv)  # overrides may follow --output


def resume_epochs(overrides: list[str]) -> int | None:
    """A resumed run keeps its config; only ``train.epochs`` may be raised."""
    epochs = None
    for text in overrides:
        key, value = parse_override(text)
        if key == "train.epochs" and isinstance(value, int) and value >= 1:
            epochs = value
        elif key != "data.data_dir":
            raise ConfigError(
                f"--resume keeps the run's saved config; {text!r} cannot change it (only "
                "train.epochs=N, to raise the epoch budget)"
            )
    return epochs


def worker_arguments(argv: list[str]) -> list[str]:
    """The command line minus ``--local-workers``: what each local worker runs."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--local-workers":
            skip = True
        elif not arg.startswith("--local-workers="):
            kept.append(arg)
    return kept


def check_before_launch(args: argparse.Namespace, overrides: list[str], output: Path) -> None:
    """Everything a bad input could break, checked once before any worker starts."""
    from seq2seq.training.launcher import check_worker_count

    try:
        check_worker_count(args.local_workers)  # before TensorFlow loads: an instant answer
    except ValueError as error:
        raise ConfigError(str(error)) from None
    from seq2seq.runs import RunPaths
    from seq2seq.training.data import prepare_data
    from seq2seq.training.run_folder import open_run_config

    init = init_from_args(args)
    config = None if args.resume else new_run_config(args, overrides, init)
    epochs = resume_epochs(overrides) if args.resume else None
    config, _ = open_run_config(config, output, args.resume, epochs)
    if init is not None:
        from seq2seq.training.init_from import check_init_from, prepare_kept

        check_init_from(init, config)
        if init.vocab == "keep":
            prepare_kept(config, init)  # once, before the workers
            return
    prepare_data(config, RunPaths(output) if args.resume else None)  # once, before the workers


def init_from_args(args: argparse.Namespace):
    """``--init-from`` and its modes as an ``InitFrom`` (None without it)."""
    if args.init_from is None:
        if args.init_vocab or args.init_optimizer:
            raise ConfigError("--init-vocab and --init-optimizer need --init-from RUN")
        return None
    if args.resume:
        raise ConfigError("--init-from starts a new run; --resume continues one: give one")
    from seq2seq.training.init_from import InitFrom

    return InitFrom(Path(args.init_from), args.init_vocab or "keep", args.init_optimizer or "reset")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    quiet.setup(args.verbose)  # before TensorFlow loads
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("tensorflow").setLevel(logging.WARNING)  # per-trace collective notes
    overrides = list(args.overrides)
    if args.data_dir:
        overrides.append(f"data.data_dir={args.data_dir}")
    if args.resume and not args.output:
        print("error: --resume needs --output RUN_DIR (the run to continue)", file=sys.stderr)
        return 2
    if not args.resume and not (args.preset or args.config or args.init_from):
        print("error: give --preset NAME and/or --config FILE", file=sys.stderr)
        return 2
    from seq2seq.data.corpora.spec import CorpusError  # PreparedDataError too
    from seq2seq.runs import DiskFullError, RunError
    from seq2seq.training.cluster import ClusterError

    output = None
    try:
        config = None
        init = init_from_args(args)
        if not args.resume:
            config = new_run_config(args, overrides, init)
        if init is not None:
            from seq2seq.training.init_from import check_init_from

            check_init_from(init, config)  # before TensorFlow loads: an instant answer
        output = Path(args.output or Path("runs") / f"{config.name}-{datetime.now():%Y%m%d-%H%M%S}")
        if args.local_workers is None:
            catch_sigterm()  # the local-workers launcher stops its workers on SIGTERM
        if args.local_workers is not None:
            check_before_launch(args, overrides, output)
            from seq2seq.training.launcher import run_local_workers

            extra = [] if args.output else ["--output", str(output)]
            return run_local_workers(args.local_workers, [*worker_arguments(argv), *extra])
        from seq2seq.training.loop import TrainingError, train

        epochs = resume_epochs(overrides) if args.resume else None
        metrics = train(config, output, resume=args.resume, epochs=epochs, init_from=init)
    except ClusterError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        os._exit(2)  # skip TensorFlow's teardown, which logs pages about the failed cluster
    except DiskFullError as error:
        print(f"error: {error}{resume_hint(output)}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(2)  # h5py's teardown after a failed write can crash (seen: exit 139)
    except (ConfigError, CorpusError, RunError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except TrainingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Terminated) as stop:
        terminated = isinstance(stop, Terminated)
        chief = getattr(stop, "is_chief", True)  # set by the loop; another worker says less
        print(stop_line(terminated, output if chief else None), file=sys.stderr)
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(143 if terminated else 130)  # TensorFlow's teardown can hang after an interrupt
    if not metrics:  # a worker other than the chief: the chief reports
        return 0
    report(output, metrics)
    return 0


def new_run_config(args: argparse.Namespace, overrides: list[str], init):
    """The new run's config: the preset/--config and overrides; with --init-from alone
    (no preset, no --config), RUN's own config with the overrides."""
    if init is None or args.preset or args.config:
        return load_config(args.preset, args.config, overrides)
    from seq2seq.training.init_from import load_run_config_of, open_init_run

    return load_run_config_of(open_init_run(init), overrides)


def stop_line(terminated: bool, output: Path | None) -> str:
    """The one line Ctrl-C or SIGTERM ends with: what the run keeps (a mid-epoch state, the
    last finished epoch) and the command that continues it."""
    stopped = "terminated (SIGTERM)" if terminated else "interrupted"
    if output is None:
        return stopped
    from seq2seq.training.mid_epoch import resume_point

    kept = resume_point(output)
    if kept is None:  # stopped before the run folder was written: nothing to continue
        return stopped
    command = f"python -m seq2seq.train --output {output} --resume"
    return f"{stopped}: {output} {kept}; continue with {command}"


def resume_hint(output: Path | None) -> str:
    if output is None or not (output / "config.yaml").is_file():
        return ""
    return (
        f"; {output} keeps its last finished epoch: "
        f"python -m seq2seq.train --output {output} --resume"
    )


def report(output: Path, metrics: dict) -> None:
    if metrics.get("already_finished"):
        print(f"{output} is already finished; raise train.epochs=N with --resume to go further")
    best = metrics.get("best", {})
    print(f"run folder: {output}")
    print(
        "best epoch {epoch}: dev BLEU {bleu}, dev loss {loss}".format(
            epoch=best.get("epoch", "?"),
            bleu=f"{best['dev_bleu']:.1f}" if "dev_bleu" in best else "n/a",
            loss=f"{best['val_loss']:.3f}" if "val_loss" in best else "n/a",
        )
    )


if __name__ == "__main__":
    sys.exit(main())
