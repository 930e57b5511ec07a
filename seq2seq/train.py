"""``python -m seq2seq.train``: train a model from a preset and/or config file into a run folder."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import datetime
from pathlib import Path

from seq2seq.config import ConfigError, load_config, preset_names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m seq2seq.train",
        description="Train a recurrent encoder-decoder. Settings: preset, then --config, "
        "then section.field=value overrides (e.g. train.epochs=5 model.cell=lstm).",
    )
    parser.add_argument("--preset", help=f"a shipped preset: {', '.join(preset_names())}")
    parser.add_argument("--config", help="a YAML config file (see seq2seq/presets/reference.yaml)")
    parser.add_argument("--output", help="run folder (default: runs/<name>-<timestamp>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --output")
    parser.add_argument("--data-dir", help="local corpus folder (default: $SEQ2SEQ_DATA_DIR)")
    parser.add_argument("overrides", nargs="*", help="section.field=value")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    overrides = list(args.overrides)
    if args.data_dir:
        overrides.append(f"data.data_dir={args.data_dir}")
    if args.resume and not args.output:
        print("error: --resume needs --output RUN_DIR (the run to continue)", file=sys.stderr)
        return 2
    if not args.resume and not (args.preset or args.config):
        print("error: give --preset NAME and/or --config FILE", file=sys.stderr)
        return 2
    from seq2seq.corpora.errors import CorpusError
    from seq2seq.runs import RunError
    from seq2seq.training import train

    try:
        config = load_config(args.preset, args.config, overrides)
        output = args.output or Path("runs") / f"{config.name}-{datetime.now():%Y%m%d-%H%M%S}"
        metrics = train(config, output, resume=args.resume)
    except (ConfigError, CorpusError, RunError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    best = metrics.get("best", {})
    print(f"run folder: {output}")
    print(
        "best epoch {epoch}: dev BLEU {bleu}, dev loss {loss}".format(
            epoch=best.get("epoch", "?"),
            bleu=f"{best['dev_bleu']:.1f}" if "dev_bleu" in best else "n/a",
            loss=f"{best['val_loss']:.3f}" if "val_loss" in best else "n/a",
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
