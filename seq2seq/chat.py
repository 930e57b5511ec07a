"""``python -m seq2seq.chat``: talk to a trained dialogue run in the terminal.

Interactive when stdin is a terminal (prompt ``you>``, answers ``bot>``). With piped
stdin it reads one message per line and prints exactly one line per message on stdout
(the reply, or an empty line when the message was refused, with the error on stderr), so
it can be scripted: ``printf 'Hi!\\nHow are you?\\n' | python -m seq2seq.chat --model RUN``.
Blank lines are ignored; only ``\\n`` ends a message and undecodable bytes are replaced
(reported as ``<stdin>:N``), so a stray byte never ends the conversation. Commands:
``/reset`` forgets the conversation, ``/quit`` (or end of input) exits, ``/help`` lists
them. Command feedback and notices go to stderr.
"""

from __future__ import annotations

import argparse
import io
import sys
from typing import Any, TextIO

from seq2seq import quiet, textio
from seq2seq.config import ConfigError, load_run_config
from seq2seq.corpora.spec import licence_note
from seq2seq.decode_options import add_decode_arguments, overrides_from_args, resolve_decode
from seq2seq.runs import RunError, open_run

HELP = "commands: /reset (forget the conversation), /quit (exit; so does Ctrl-D), /help"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m seq2seq.chat",
        description="Chat with a trained dialogue model (multi-turn). Reads messages from "
        "stdin; with piped input, prints one reply line per message line.",
        epilog=HELP,
    )
    parser.add_argument("--model", required=True, metavar="RUN", help="run folder")
    parser.add_argument(
        "--context-turns",
        type=int,
        metavar="K",
        help="earlier turns given to the model (default: the run's data.context_turns)",
    )
    add_decode_arguments(parser, n_best=False)
    return parser.parse_args(argv)


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run_loop(
    session: Any,
    stream: TextIO,
    out: TextIO,
    interactive: bool,
    overrides: dict[str, Any],
    error_types: tuple[type[BaseException], ...],
) -> int:
    """Read messages from ``stream`` until /quit or end of input; returns the exit code.

    Undecodable bytes in a message are replaced (with a notice naming ``<stdin>:N``), so
    a stray byte never ends the conversation."""
    number = 0
    while True:
        number += 1
        if interactive:
            try:
                line = input("you> ")
            except EOFError:
                print(file=out)
                return 0
            except KeyboardInterrupt:
                print(file=out)
                return 0
        else:
            line = stream.readline()
            if not line:
                return 0
        text, notices = textio.clean_text(line.rstrip("\r\n"))
        for notice in notices:
            note(f"<stdin>:{number}: {notice}")
        message = text.strip()
        if not message:
            continue
        command = message.lower()
        if command in ("/quit", "/exit"):
            return 0
        if command == "/reset":
            session.reset()
            note("(conversation reset)")
            continue
        if command == "/help":
            note(HELP)
            continue
        try:
            reply = session.reply(message, **overrides)
        except error_types as error:
            note(f"error: {error}")
            if not interactive:
                print(file=out, flush=True)
            continue
        print(f"bot> {reply}" if interactive else reply, file=out, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet.setup()  # before TensorFlow loads
    try:
        paths = open_run(args.model)
        overrides = overrides_from_args(args)
        resolve_decode(load_run_config(paths.config), overrides)  # before TensorFlow loads
        if args.context_turns is not None and args.context_turns < 0:
            raise ConfigError("--context-turns must be >= 0")
        from seq2seq.dialogue import ChatSession
        from seq2seq.translator import InputError, Translator

        translator = Translator.from_run(paths.root)
    except (RunError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    session = ChatSession(translator, context_turns=args.context_turns)
    # Undecodable bytes reach run_loop as surrogates (it replaces them), and only "\n"
    # ends a message, so replies stay aligned with piped lines holding a lone "\r".
    if isinstance(sys.stdin, io.TextIOWrapper):  # (a StringIO in tests decodes nothing)
        sys.stdin.reconfigure(errors="surrogateescape", newline="\n")
    interactive = sys.stdin.isatty()
    licence = licence_note(translator.config.data.corpus)
    if licence:
        note(f"note: {licence}")
    if interactive:
        try:
            import readline  # noqa: F401  (line editing and history for input())
        except ImportError:  # pragma: no cover - not on every platform
            pass
        note(f"chatting with {paths.root} ({session.context_turns} context turns). {HELP}")
    try:
        return run_loop(
            session,
            sys.stdin,
            sys.stdout,
            interactive,
            overrides,
            (InputError, ConfigError),
        )
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        return textio.silence_stdout()
    except KeyboardInterrupt:  # Ctrl-C while a reply is decoded: end like Ctrl-D, quietly
        print(file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
