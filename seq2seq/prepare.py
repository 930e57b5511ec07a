"""``python -m seq2seq.prepare``: a corpus, once, into token-id shards that training streams.

Same settings as ``train`` (``--preset``, ``--config``, ``section.field=value``); only the
``data`` section matters. Train from the folder with ``data.prepared=DIR``. Without it,
``train`` prepares into a cache keyed by the data config, so this command is for corpora
too big to prepare on the side, for a shared folder that several workers read, and for
checking a corpus before a long run.

Examples::

    python -m seq2seq.prepare --preset es-en-gru --output prepared/es-en
    python -m seq2seq.prepare --preset es-en-gru data.corpus=tsv data.path=big.tsv.gz \\
        --output prepared/big
    python -m seq2seq.train --preset es-en-gru data.prepared=prepared/es-en

Exit status 2, with one line, for bad settings, a bad corpus, or an output folder that
holds something else.
"""

from __future__ import annotations

import argparse
import logging
import sys

from seq2seq.cli import quiet
from seq2seq.config import ConfigError, load_config, preset_names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m seq2seq.prepare",
        description="Prepare a corpus into train/dev/test token-id shards with a manifest. "
        "Settings: preset, then --config, then section.field=value overrides.",
        epilog="Then: python -m seq2seq.train --preset NAME data.prepared=DIR",
    )
    parser.add_argument("--preset", help=f"a shipped preset: {', '.join(preset_names())}")
    parser.add_argument("--config", help="a YAML config file (see seq2seq/presets/reference.yaml)")
    parser.add_argument("--output", required=True, metavar="DIR", help="the prepared folder")
    parser.add_argument("--data-dir", help="local corpus folder (default: $SEQ2SEQ_DATA_DIR)")
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="encoding processes (default: one per core)",
    )
    parser.add_argument("overrides", nargs="*", help="section.field=value")
    quiet.add_verbose_argument(parser)
    return parser.parse_intermixed_args(argv)  # overrides may follow --output


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet.setup(args.verbose)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    overrides = list(args.overrides)
    if args.data_dir:
        overrides.append(f"data.data_dir={args.data_dir}")
    if not (args.preset or args.config):
        print("error: give --preset NAME and/or --config FILE", file=sys.stderr)
        return 2
    if args.workers is not None and args.workers < 1:
        print(f"error: --workers is {args.workers}; allowed: 1 or more", file=sys.stderr)
        return 2
    from seq2seq.data.corpora.spec import CorpusError  # PreparedDataError too
    from seq2seq.data.prepare import prepare
    from seq2seq.data.tokenizers import TokenizerError

    try:
        config = load_config(args.preset, args.config, overrides)
        if config.data.prepared:
            raise ConfigError("data.prepared names a folder to train from; use --output here")
        result = prepare(config.data, args.output, workers=args.workers)
    except (ConfigError, CorpusError, TokenizerError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: nothing was kept in {args.output}", file=sys.stderr)
        return 130
    folder = result.folder
    pairs = ", ".join(f"{split} {folder.pairs(split):,}" for split in ("train", "dev", "test"))
    if result.seconds:
        print(f"prepared {folder.root} in {result.seconds:.0f} s: {pairs} pairs")
    else:
        print(f"{folder.root} is already prepared from this data config: {pairs} pairs")
    for reason, count in folder.manifest["dropped"].items():
        print(f"  dropped {count:,}: {reason}")
    print(f"train with: python -m seq2seq.train ... data.prepared={folder.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
