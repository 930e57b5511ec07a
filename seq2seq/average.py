"""``python -m seq2seq.average``: average a run's last K epoch checkpoints into a new run.

Averaging the weights of the last few epochs (Junczys-Dowmunt et al. 2016; Vaswani et
al. 2017) smooths the noise of the final updates and usually gains a little BLEU for
free. Training keeps the last ``train.keep_checkpoints`` epochs as
``RUN/checkpoints/epoch-NNNN.weights.h5`` (``model.save_weights``, NNNN the 1-based epoch
zero-padded to 4 digits). The output is an ordinary run folder (``config.yaml``,
``FORMAT``, both tokenizers, ``model.keras`` with the averaged weights, and
``metrics.json`` naming the averaged epochs), so it evaluates, translates and exports
like any other.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from seq2seq.cli import quiet
from seq2seq.run_lock import check_output, new_output
from seq2seq.runs import (
    RunError,
    RunPaths,
    check_fingerprint,
    copy_fingerprint,
    open_run,
    write_atomically,
    write_metrics,
)
from seq2seq.training.checkpoints import epoch_weights


class AverageError(ValueError):
    """Checkpoints cannot be averaged as asked."""


def last_checkpoints(run: str | Path, last: int, allow_gaps: bool = False) -> dict[int, Path]:
    """The ``last`` newest checkpoints, or ``AverageError`` saying what is there.

    They must be of consecutive epochs: a checkpoint lost to a kill would otherwise make
    the "last 2" silently mean epochs 2 and 4. ``allow_gaps`` takes them anyway."""
    if last < 1:
        raise AverageError(f"--last is {last}; allowed: a whole number >= 1")
    found = epoch_weights(run)
    folder = RunPaths(Path(run)).checkpoints
    if len(found) < last:
        epochs = ", ".join(str(e) for e in found) or "none"
        raise AverageError(
            f"{folder} holds {len(found)} epoch checkpoint(s) (epochs: {epochs}); "
            f"cannot average the last {last}. Train longer or raise train.keep_checkpoints."
        )
    chosen = dict(list(found.items())[-last:])
    epochs = list(chosen)
    missing = [e for e in range(epochs[0], epochs[-1] + 1) if e not in chosen]
    if missing and not allow_gaps:
        raise AverageError(
            f"the last {last} checkpoints in {folder} are of epochs "
            f"{', '.join(map(str, epochs))}, not consecutive: epoch(s) "
            f"{', '.join(map(str, missing))} missing. Pass --allow-gaps to average them "
            "anyway, or resume the run (it rewrites a missing last checkpoint)."
        )
    return chosen


def build_run_model(paths: RunPaths):
    """The run's architecture with fresh weights, rebuilt from its config and vocabularies."""
    from seq2seq.config import ConfigError, load_run_config
    from seq2seq.data.tokenizers import TokenizerError, load_tokenizer
    from seq2seq.model import build_model

    try:
        config = load_run_config(paths.config)
        source = load_tokenizer(paths.source_vocab)
        target = load_tokenizer(paths.target_vocab)
    except (ConfigError, TokenizerError, OSError, KeyError) as error:
        raise RunError(f"{paths.root}: cannot rebuild its model: {error}") from error
    check_fingerprint(paths)
    return build_model(config.model, source.vocab_size, target.vocab_size)


def average_weights(model, files: list[Path]) -> None:
    """Set ``model``'s weights to the mean of ``files``' (integer state: the last file's)."""
    sums: list[np.ndarray] | None = None
    for path in files:
        try:
            model.load_weights(path)
        except Exception as error:  # h5py and Keras raise many types for bad files
            raise AverageError(f"{path}: not a checkpoint of this run's model: {error}") from error
        values = [np.asarray(w.numpy(), np.float64) for w in model.weights]
        sums = values if sums is None else [s + v for s, v in zip(sums, values, strict=True)]
    for weight, total in zip(model.weights, sums or [], strict=True):
        if np.issubdtype(np.dtype(weight.dtype), np.floating):
            weight.assign((total / len(files)).astype(weight.dtype))


def average_run(
    run: str | Path, last: int, output: str | Path, allow_gaps: bool = False
) -> list[int]:
    """Write run ``output``: ``run`` with the mean of its last ``last`` epoch weights.

    Returns the averaged epochs. ``output`` is created and locked (``seq2seq.run_lock``)
    for the time it is written, so a second writer is refused; a failure removes it. An
    existing ``output`` is an error.
    """
    paths = open_run(run)
    check_output(output, AverageError)
    chosen = last_checkpoints(paths.root, last, allow_gaps)
    model = build_run_model(paths)
    average_weights(model, list(chosen.values()))
    with new_output(output, "averaging", AverageError) as output:
        target = RunPaths(output)
        for name in (paths.config, paths.format):
            shutil.copy2(name, output / name.name)
        shutil.copytree(paths.source_vocab, target.source_vocab)
        shutil.copytree(paths.target_vocab, target.target_vocab)
        copy_fingerprint(paths, target)
        if paths.source_words.is_file():
            shutil.copy2(paths.source_words, target.source_words)
        write_atomically(target.best_model, model.save)
        averaged = {
            "from_run": str(paths.root.resolve()),
            "epochs": list(chosen),
            "checkpoints": [p.name for p in chosen.values()],
        }
        write_metrics(target, {"averaged": averaged})
    return list(chosen)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m seq2seq.average",
        description="Average the last K epoch checkpoints of a run into a new run folder.",
    )
    parser.add_argument("--model", required=True, help="trained run folder")
    parser.add_argument("--last", type=int, required=True, help="how many epochs (K >= 1)")
    parser.add_argument("--output", required=True, help="run folder to create")
    parser.add_argument(
        "--allow-gaps",
        action="store_true",
        help="average the last K checkpoints even when their epochs are not consecutive",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet.setup()  # before TensorFlow loads
    try:
        epochs = average_run(args.model, args.last, args.output, args.allow_gaps)
    except (RunError, AverageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps({"output": args.output, "averaged_epochs": epochs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
