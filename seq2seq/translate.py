"""Translate with a trained run: ``python -m seq2seq.translate --model RUN [SENTENCE ...]``.

Sentences come from the positional arguments, else from standard input (one per line),
else from ``--input FILE`` (written to ``--output FILE`` or standard output, with a
progress bar). With ``--n-best N`` (N > 1) every hypothesis is printed on its own line
as ``INPUT_NUMBER<TAB>SCORE<TAB>TEXT``; otherwise one translation per input line.

A bad line in a file or on standard input (empty, too long) is reported on standard error
as ``FILE:LINE: reason`` and gives an empty output line, so outputs stay aligned with
inputs; the counts are printed at the end. Bad arguments, a bad run folder or a bad
sentence given as an argument print ``error: ...`` and exit with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import TextIO

from seq2seq.decode_options import add_decode_arguments, overrides_from_args

CHUNK = 256  # lines handed to the translator at once in file/stdin mode


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m seq2seq.translate",
        description="Translate sentences with a trained seq2seq run folder.",
    )
    parser.add_argument("sentences", nargs="*", help="sentences to translate (else stdin)")
    parser.add_argument("--model", required=True, metavar="RUN", help="run folder")
    parser.add_argument("--input", metavar="FILE", help="translate FILE, one sentence a line")
    parser.add_argument("--output", metavar="FILE", help="write translations to FILE")
    add_decode_arguments(parser)
    parser.add_argument("--max-input-chars", type=int, default=1000, metavar="N")
    parser.add_argument(
        "--no-jit",
        action="store_true",
        help="skip XLA compilation (starts faster; decodes slower): for a few sentences",
    )
    args = parser.parse_args(argv)
    if args.output and not args.input:
        parser.error("--output needs --input")
    if args.input and args.sentences:
        parser.error("give sentences as arguments or --input FILE, not both")
    return args


def format_translation(translation, number: int, n_best: bool) -> list[str]:
    if not n_best:
        return [translation.text]
    return [f"{number}\t{score:.4f}\t{text}" for text, score in translation.n_best]


def format_blank(number: int, n_best: bool) -> list[str]:
    return [f"{number}\t\t"] if n_best else [""]


def chunks(lines: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for line in lines:
        chunk.append(line.rstrip("\r\n"))
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def translate_lines(
    translator,
    lines: Iterable[str],
    name: str,
    out: TextIO,
    overrides: dict,
    n_best: bool,
    chunk_size: int = CHUNK,
    progress=None,
) -> tuple[int, int]:
    """Translate line by line (in chunks); returns (translated, bad) counts."""
    from seq2seq.prediction import seeded_overrides
    from seq2seq.translator import InputError

    number, good, bad = 0, 0, 0
    for chunk_number, chunk in enumerate(chunks(lines, chunk_size)):
        valid: list[tuple[int, str]] = []
        for offset, line in enumerate(chunk, start=number + 1):
            try:
                translator.check_input(line, "line")
                valid.append((offset, line))
            except InputError as error:
                print(f"{name}:{offset}: {error}; writing an empty line", file=sys.stderr)
        seeded = seeded_overrides(overrides, chunk_number)
        translations = translator.translate([line for _, line in valid], **seeded)
        by_number = dict(zip((n for n, _ in valid), translations, strict=True))
        for offset in range(number + 1, number + len(chunk) + 1):
            if offset in by_number:
                rows = format_translation(by_number[offset], offset, n_best)
                good += 1
            else:
                rows = format_blank(offset, n_best)
                bad += 1
            out.write("".join(row + "\n" for row in rows))
        out.flush()
        number += len(chunk)
        if progress is not None:
            progress.update(len(chunk))
    return good, bad


def run(args: argparse.Namespace) -> int:
    from seq2seq.translator import Translator

    overrides = overrides_from_args(args)
    translator = Translator.from_run(
        args.model, max_input_chars=args.max_input_chars, jit_compile=False if args.no_jit else None
    )
    decode = translator.decode_config(**overrides)  # fail early on bad options
    n_best = decode.n_best > 1
    if args.sentences:
        for i, sentence in enumerate(args.sentences):
            translator.check_input(sentence, f"argument {i + 1}")
        for number, translation in enumerate(
            translator.translate(args.sentences, **overrides), start=1
        ):
            print("\n".join(format_translation(translation, number, n_best)))
        return 0
    if args.input:
        from tqdm import tqdm

        path = Path(args.input)
        if not path.is_file():
            raise FileNotFoundError(f"input file not found: {path}")
        total = sum(1 for _ in path.open(encoding="utf-8", errors="replace"))
        target = (
            Path(args.output).open("w", encoding="utf-8")
            if args.output
            else nullcontext(sys.stdout)
        )
        with path.open(encoding="utf-8", errors="replace") as lines, target as out:
            with tqdm(total=total, unit="line", file=sys.stderr, disable=None) as progress:
                good, bad = translate_lines(
                    translator, lines, str(path), out, overrides, n_best, progress=progress
                )
        print(f"translated {good} lines, {bad} bad lines (empty output)", file=sys.stderr)
        return 0
    interactive = sys.stdin.isatty()
    good, bad = translate_lines(
        translator,
        sys.stdin,
        "<stdin>",
        sys.stdout,
        overrides,
        n_best,
        chunk_size=1 if interactive else CHUNK,
    )
    if bad:
        print(f"translated {good} lines, {bad} bad lines (empty output)", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from seq2seq.config import ConfigError
    from seq2seq.runs import RunError
    from seq2seq.translator import InputError

    try:
        return run(args)
    except (RunError, InputError, ConfigError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
