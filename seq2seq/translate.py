"""Translate with a trained run: ``python -m seq2seq.translate --model RUN [SENTENCE ...]``.

Sentences come from the positional arguments, else from standard input (one per line),
else from ``--input FILE`` (written to ``--output FILE`` or standard output, with a
progress bar). With ``--n-best N`` (N > 1) every hypothesis is printed on its own line
as ``INPUT_NUMBER<TAB>RANK<TAB>SCORE<TAB>TEXT`` (``NBEST_FORMAT``): N lines per input, best
first, so the first column still says which input line a hypothesis belongs to;
otherwise one translation per input line. With no sentence and a terminal on standard
input it says so and reads one sentence per line until Ctrl-D. A chat (dialogue) run
translates too, but with a warning: each line is taken as a message without context.

A bad line in a file or on standard input (empty, too long) is reported on standard error
as ``FILE:LINE: reason`` and gives an empty output line, so outputs stay aligned with
inputs; the counts are printed at the end. Lines are read by ``seq2seq.cli.line_io`` (split on
``\\n`` only, undecodable bytes replaced and reported), inputs the model had to shorten are
flagged with their line, and ``--output`` is written whole or not at all (never onto the
input). Bad arguments, a bad run folder, an unwritable output or a bad sentence given as an
argument print ``error: ...`` and exit with status 2; flags and the run folder are checked
before TensorFlow loads. A closed pipe (``| head``) ends quietly with status 141.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import textwrap
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import TextIO

from seq2seq.cli import line_io, quiet
from seq2seq.cli.line_io import Line
from seq2seq.search.options import add_decode_arguments, overrides_from_args, resolve_decode

CHUNK = 256  # lines handed to the translator at once in file/stdin mode
NBEST_FORMAT = (
    "--n-best N prints N lines per input, best first: "
    "INPUT_NUMBER<TAB>RANK<TAB>SCORE<TAB>TEXT (SCORE: the search's score, higher is better; "
    "a bad input line gives one line INPUT_NUMBER<TAB><TAB><TAB>)."
)
PYTHON = ".venv/bin/python"
EPILOG = f"""examples:
  {PYTHON} -m seq2seq.translate --model runs/quickstart "Tengo hambre."
  echo "¿Dónde está la estación?" | {PYTHON} -m seq2seq.translate --model runs/quickstart
  {PYTHON} -m seq2seq.translate --model runs/quickstart --input in.es --output out.en
  {PYTHON} -m seq2seq.translate --model runs/quickstart --beam 5 --n-best 3 "Hola."

{
    textwrap.fill(
        "output: one translation per input line, in order (an empty line for a bad input line, "
        "with the reason on standard error). " + NBEST_FORMAT,
        80,
    )
}

Each call loads TensorFlow and the model (seconds); to translate many sentences, pass
them together, use --input, type them one per line, or use the app (python -m apps.web).
"""


def format_translation(translation, number: int, n_best: bool) -> list[str]:
    if not n_best:
        return [translation.text]
    return [
        f"{number}\t{rank}\t{score:.4f}\t{text}"
        for rank, (text, score) in enumerate(translation.n_best, start=1)
    ]


def format_blank(number: int, n_best: bool) -> list[str]:
    return [f"{number}\t\t\t"] if n_best else [""]


def chunks(lines: Iterable[Line | str], size: int) -> Iterator[list[Line]]:
    chunk: list[Line] = []
    for number, line in enumerate(lines, start=1):
        if isinstance(line, str):  # already-decoded text (library callers)
            text, notices = line_io.clean_text(line.rstrip("\r\n"))
            line = Line(number, text, notices)
        chunk.append(line)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def flag_truncated(translation, where: str, translator) -> None:
    """The README promises that over-long inputs are flagged, not cut silently."""
    if translation.truncated:
        limit = translator.config.data.max_source_length
        print(
            f"{where}: input is longer than the model's {limit} tokens "
            f"(data.max_source_length); it was shortened to fit",
            file=sys.stderr,
        )


def translate_lines(
    translator,
    lines: Iterable[Line | str],
    name: str,
    out: TextIO,
    decode,
    chunk_size: int = CHUNK,
    progress=None,
    glossary=None,
) -> tuple[int, int]:
    """Translate line by line (in chunks); returns (translated, bad) counts.

    ``lines`` are ``line_io.Line``s (from ``line_io.read_lines``) or strings; ``decode``
    is the job's ``DecodeConfig``. Exactly one output line (``decode.n_best`` rows with
    --n-best) is written per input line, in order. ``glossary``: see ``--glossary``.
    """
    from seq2seq.inference.prediction import batch_seed
    from seq2seq.inference.translator import InputError

    n_best = decode.n_best > 1
    good, bad = 0, 0
    for chunk_number, chunk in enumerate(chunks(lines, chunk_size)):
        valid: list[tuple[int, str]] = []
        for line in chunk:
            line_io.print_notices(line, name)
            if getattr(line, "error", None):
                print(f"{name}:{line.number}: {line.error}; writing an empty line", file=sys.stderr)
                continue
            try:
                translator.check_input(line.text, "line")
                valid.append((line.number, line.text))
            except InputError as error:
                print(f"{name}:{line.number}: {error}; writing an empty line", file=sys.stderr)
        seeded = decode.replace(seed=batch_seed(decode.seed, chunk_number))
        texts = [text for _, text in valid]
        translations = translator.translate(texts, seeded, glossary=glossary)
        by_number = dict(zip((n for n, _ in valid), translations, strict=True))
        for line in chunk:
            if line.number in by_number:
                translation = by_number[line.number]
                flag_truncated(translation, f"{name}:{line.number}", translator)
                rows = format_translation(translation, line.number, n_best)
                good += 1
            else:
                rows = format_blank(line.number, n_best)
                bad += 1
            line_io.write_rows(out, rows)
        out.flush()
        if progress is not None:
            progress.update(len(chunk))
    return good, bad


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m seq2seq.translate",
        description=textwrap.fill(
            "Translate sentences with a trained seq2seq run folder. The direction is the "
            "run's: runs/quickstart (the quickstart preset) translates Spanish into English, "
            "an en-es-* run English into Spanish; it is printed when a terminal is asked "
            "for sentences.",
            80,
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "sentences",
        nargs="*",
        help="sentences to translate (else standard input, one per line; a terminal is "
        "asked for them)",
    )
    parser.add_argument(
        "--model",
        required=True,
        action="append",
        metavar="RUN",
        help="run folder, e.g. runs/quickstart; give it several times to decode with an "
        "ensemble of runs that share their vocabularies (docs/ensembles.md)",
    )
    parser.add_argument("--input", metavar="FILE", help="translate FILE, one sentence a line")
    parser.add_argument("--output", metavar="FILE", help="write translations to FILE")
    parser.add_argument(
        "--glossary",
        metavar="FILE",
        help="terms the translation must use: lines of source term<TAB>target term; a "
        "sentence holding a source term (whole word, any case) gets its target term, by "
        "constrained beam search (needs --method beam or --beam N; docs/decoding.md)",
    )
    add_decode_arguments(parser)
    parser.add_argument(
        "--max-input-chars",
        type=int,
        default=1000,
        metavar="N",
        help="longest accepted input line in characters, 1 or more (default 1000)",
    )
    jit = parser.add_mutually_exclusive_group()
    jit.add_argument(
        "--jit",
        dest="jit",
        action="store_const",
        const=True,
        default=None,
        help="XLA-compile the searches (default: only for 50,000 sentences or more, where "
        "its compiling pays off; a few sentences decode op by op, with no start-up cost)",
    )
    jit.add_argument(
        "--no-jit", dest="jit", action="store_const", const=False, help="never XLA-compile"
    )
    quiet.add_verbose_argument(parser)
    args = parser.parse_args(argv)
    args.models, args.model = args.model, args.model[0]  # --model A --model B: an ensemble
    if args.output and not args.input:
        parser.error("--output needs --input")
    if args.input and args.sentences:
        parser.error("give sentences as arguments or --input FILE, not both")
    if args.max_input_chars < 1:
        parser.error(f"--max-input-chars is {args.max_input_chars}; allowed: 1 or more")
    return args


def check_run_and_flags(args: argparse.Namespace):
    """The run folder, its config and the decoding flags resolved into the job's one
    ``DecodeConfig``, checked before TensorFlow loads (a mistyped flag fails in a fraction
    of a second, not after the model load). Returns ``(config, decode)``."""
    from seq2seq.config import ConfigError, load_run_config
    from seq2seq.runs import RunError, open_run

    if len(args.models) > 1:
        from seq2seq.inference.ensemble import check_members

        check_members(args.models)  # every member usable, all with the same vocabularies
    paths = open_run(args.model)
    try:
        config = load_run_config(paths.config)
    except ConfigError as error:
        raise RunError(f"{paths.root}: its config.yaml cannot be used: {error}") from error
    decode = resolve_decode(config, overrides_from_args(args))
    args.glossary_terms = None
    if args.glossary:  # its lines and the search now; its target terms once the run loads
        from seq2seq.inference.glossary import check_method, read_glossary

        args.glossary_terms = read_glossary(args.glossary)
        check_method(args.glossary, decode.method)
    warn_if_chat(paths.root, config)
    if args.input:
        line_io.check_input_file(Path(args.input))
        if args.output:
            line_io.check_output(Path(args.output), Path(args.input))
    return config, decode


def warn_if_chat(root: Path, config) -> None:
    """A chat run answers rather than translates: say so (it still runs, for scripts)."""
    from seq2seq.data.corpora.spec import is_dialogue

    data = config.data
    if is_dialogue(data.corpus, data.context_turns):
        print(
            f"warning: {root} is a chat run ({data.corpus}): each line gets a reply, with "
            f"no earlier turns as context; to talk to it use: python -m seq2seq.chat "
            f"--model {root}",
            file=sys.stderr,
        )


def describe_run(root: Path, config) -> str:
    """``runs/quickstart: es → en`` (or the corpus, for a corpus without languages)."""
    from seq2seq.data.corpora.spec import BY_NAME, corpus_languages, is_dialogue

    data = config.data
    if is_dialogue(data.corpus, data.context_turns):
        return f"{root}: a chat run ({data.corpus})"
    if data.corpus in BY_NAME:
        try:
            source, target = corpus_languages(data.corpus, data.reverse)
            return f"{root}: {source} → {target}"
        except (KeyError, ValueError):
            pass
    return f"{root}: {data.corpus}" + (" (reversed)" if data.reverse else "")


def translate_arguments(translator, sentences: list[str], decode, glossary=None) -> None:
    cleaned = []
    for number, sentence in enumerate(sentences, start=1):
        text, notices = line_io.clean_text(sentence)
        for notice in notices:
            print(f"argument {number}: {notice}", file=sys.stderr)
        translator.check_input(text, f"argument {number}")
        cleaned.append(text)
    translations = translator.translate(cleaned, decode, glossary=glossary)
    for number, translation in enumerate(translations, start=1):
        flag_truncated(translation, f"argument {number}", translator)
        rows = format_translation(translation, number, decode.n_best > 1)
        line_io.write_rows(sys.stdout, rows)
    sys.stdout.flush()


def translate_file(translator, args: argparse.Namespace, decode, total: int, glossary=None) -> None:
    """``--input`` (``total`` lines) to ``--output`` (written whole or not at all) or stdout."""
    from tqdm import tqdm

    path = Path(args.input)
    target = line_io.open_output(args.output, path) if args.output else nullcontext(sys.stdout)
    with path.open("rb") as stream, target as out:
        with tqdm(total=total, unit="line", file=sys.stderr, disable=None) as progress:
            lines = line_io.read_lines(stream, str(path), args.max_input_chars)
            good, bad = translate_lines(
                translator, lines, str(path), out, decode, progress=progress, glossary=glossary
            )
    print(f"translated {good} lines, {bad} bad lines (empty output)", file=sys.stderr)


def job_size(args: argparse.Namespace, stdin_head: list | None) -> int | None:
    """Sentences in this job; None for a stream longer than its first chunk."""
    if args.sentences:
        return len(args.sentences)
    if args.input:
        return line_io.count_lines(Path(args.input))
    if stdin_head is None:  # a terminal: each line typed is a job of one
        return 1
    return len(stdin_head) if len(stdin_head) < CHUNK else None


def run(args: argparse.Namespace) -> int:
    config, decode = check_run_and_flags(args)
    interactive = not args.sentences and not args.input and sys.stdin.isatty()
    if interactive:  # not a silent wait: say what it waits for, before the slow load
        print(
            f"{describe_run(Path(args.model), config)}. Type a sentence and press Enter to "
            "translate it; Ctrl-D to end. (Loading the model…)",
            file=sys.stderr,
            flush=True,
        )
    stdin_lines = stdin_head = None
    if not args.sentences and not args.input and not interactive:
        # The first chunk tells a one-off pipe (`echo ... |`) from a long stream.
        stdin_lines = line_io.read_lines(sys.stdin.buffer, "<stdin>", args.max_input_chars)
        stdin_head = list(itertools.islice(stdin_lines, CHUNK))
    size = job_size(args, stdin_head)
    from seq2seq.inference.ensemble import load_ensemble
    from seq2seq.search.searcher import plan_searches

    # --jit / --no-jit force it; else the job's size decides (decode.jit_compile: false: no XLA)
    jit = False if args.jit is None and not config.decode.jit_compile else args.jit
    plan = plan_searches(size, jit)
    translator = load_ensemble(
        args.models,
        max_input_chars=args.max_input_chars,
        jit_compile=plan.jit_compile,
        eager_until_built=plan.eager_until_built,
    )
    glossary = translator.check_glossary(args.glossary_terms, decode)  # spelled by the run
    if args.sentences:
        translate_arguments(translator, args.sentences, decode, glossary)
    elif args.input:
        translate_file(translator, args, decode, size, glossary)
    else:
        if stdin_lines is None:
            stdin_lines = line_io.read_lines(sys.stdin.buffer, "<stdin>", args.max_input_chars)
        good, bad = translate_lines(
            translator,
            itertools.chain(stdin_head or [], stdin_lines),
            "<stdin>",
            sys.stdout,
            decode,
            chunk_size=1 if interactive else CHUNK,
            glossary=glossary,
        )
        if bad:
            print(f"translated {good} lines, {bad} bad lines (empty output)", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet.setup(args.verbose)  # before TensorFlow loads
    from seq2seq.config import ConfigError
    from seq2seq.runs import RunError

    try:
        return run(args)
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        return line_io.silence_stdout()
    except (RunError, ConfigError, ValueError) as error:
        # ValueError: the translator's InputError, line_io.TextInputError
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # e.g. `> /dev/full`: standard output cannot be written
        print(f"error: cannot write the output: {line_io.describe(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
