"""``python -m seq2seq.export``: a run folder as a TensorFlow SavedModel, text in, text out,
or (``--format tflite``) a TFLite model. What the exports hold and how they behave:
``seq2seq.exporting.exporters`` and docs/export.md.
"""

from __future__ import annotations

import argparse
import sys

from seq2seq.cli import quiet
from seq2seq.exporting.exporters import (
    FORMATS,
    METHODS,
    TERMS_SIGNATURE,
    ExportError,
    export_saved_model,
    export_tflite,
)

# ---------------------------------------------------------------------------------------
# Command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m seq2seq.export",
        description="Export a trained run as a SavedModel that translates strings.",
    )
    parser.add_argument("--model", required=True, help="trained run folder")
    parser.add_argument("--output", required=True, help="folder to create for the export")
    parser.add_argument("--format", choices=FORMATS, default="saved_model")
    parser.add_argument(
        "--method", choices=METHODS, help="search baked into the export (default: the run's)"
    )
    parser.add_argument("--beam-size", type=int, help="beam width (default: the run's)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet.setup()  # before TensorFlow loads
    from seq2seq.config import ConfigError
    from seq2seq.exporting.graph_tokenizers import GraphTextError
    from seq2seq.runs import RunError

    try:
        export = export_tflite if args.format == "tflite" else export_saved_model
        settings = export(args.model, args.output, args.method, args.beam_size)
    except (RunError, ConfigError, ExportError, GraphTextError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"exported {args.model} to {args.output} ({args.format}, {settings.method} search)")
    if args.format == "saved_model" and settings.method == "beam":
        print(f"signatures: serving_default (sentences), {TERMS_SIGNATURE} (sentences, terms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
