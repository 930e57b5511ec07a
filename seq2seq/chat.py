"""``python -m seq2seq.chat``: talk to a trained dialogue run in the terminal.

Interactive when stdin is a terminal (prompt ``you>``, answers ``bot>``). With piped
stdin it reads one message per line and prints exactly one line per message on stdout
(the reply, or an empty line when the message was refused, with the error on stderr), so
it can be scripted: ``printf 'Hi!\\nHow are you?\\n' | python -m seq2seq.chat --model RUN``.
Blank lines are ignored; only ``\\n`` ends a message and undecodable bytes are replaced
(reported as ``<stdin>:N``), so a stray byte never ends the conversation. Commands:
``/reset`` forgets the conversation, ``/quit`` (or end of input) exits, ``/help`` lists
them. Command feedback and notices go to stderr.

Interactive replies stream: the words appear as the decoder produces them (greedy search
and sampling; beam search and MMI reranking print the whole reply when it is found).
Ctrl-C during a reply stops it there (the partial reply stays in the conversation) and
the prompt comes back; Ctrl-C at the prompt, or Ctrl-D, quits. ``--mmi-lambda`` reranks
by mutual information with the backward run ``RUN-backward`` (or ``--backward-model``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import select
import signal
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any, TextIO

from seq2seq.cli import line_io, quiet
from seq2seq.config import ConfigError, load_run_config
from seq2seq.data.corpora.spec import licence_note
from seq2seq.inference.mmi import require_backward
from seq2seq.runs import RunError, open_run
from seq2seq.search.options import add_decode_arguments, overrides_from_args, resolve_decode

HELP = "commands: /reset (forget the conversation), /quit (exit; so does Ctrl-D), /help"
EPILOG = f"""examples:
  .venv/bin/python -m seq2seq.chat --model runs/quickstart-chat
  .venv/bin/python -m seq2seq.chat --model runs/quickstart-chat --temperature 0.7 --top-p 0.9
  printf 'Hi!\\nHow are you?\\n' | .venv/bin/python -m seq2seq.chat --model runs/quickstart-chat
  .venv/bin/python -m seq2seq.chat --model runs/chat --beam 5 --mmi-lambda 0.5

{HELP}
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m seq2seq.chat",
        description=textwrap.fill(
            "Chat with a trained dialogue model (multi-turn). In a terminal it prompts "
            "'you>' and answers 'bot>'; with piped input it prints one reply line per "
            "message line.",
            80,
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model", required=True, metavar="RUN", help="run folder, e.g. runs/quickstart-chat"
    )
    parser.add_argument(
        "--context-turns",
        type=int,
        metavar="K",
        help="earlier turns given to the model (default: the run's data.context_turns)",
    )
    add_decode_arguments(parser, n_best=False, mmi=True)
    return parser.parse_args(argv)


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class CtrlC:
    """Ctrl-C in a chat whose decoder runs in many threads.

    The kernel hands SIGINT to any thread that does not block it, and a TensorFlow (or
    OpenBLAS) thread getting it would leave the prompt waiting in ``input()``. So SIGINT
    is blocked in every thread, from before NumPy and TensorFlow start theirs, which
    inherit the mask (this module imports neither at its top), and it stays blocked: a
    Ctrl-C stays pending for the process, and ``pressed`` takes it. The decoder asks
    between chunks and stops; the prompt (``prompt``) asks while it waits for a line and
    raises ``KeyboardInterrupt``, which quits. (Unblocking it at the prompt was not
    enough: a thread TensorFlow started meanwhile took the signal and the prompt never
    woke.) Without POSIX signal masks (or off the main thread) Ctrl-C keeps Python's
    default behaviour.
    """

    def __init__(self) -> None:
        self.active = hasattr(signal, "pthread_sigmask") and (
            threading.current_thread() is threading.main_thread()
        )
        self._mask: Any = None

    def __enter__(self) -> CtrlC:
        if self.active:
            self._mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.active:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)

    @contextlib.contextmanager
    def deliverable(self) -> Iterator[None]:
        """Ctrl-C raises ``KeyboardInterrupt`` inside this block (the prompt)."""
        if self.active:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        try:
            yield
        finally:
            if self.active:
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})

    def prompt(self, text: str, stream: TextIO | None = None) -> str:
        """``input(text)`` on a terminal, where Ctrl-C raises ``KeyboardInterrupt`` and end
        of input ``EOFError``, whichever thread the kernel chose for the signal."""
        stream = stream or sys.stdin
        if not self.active:
            return input(text)
        sys.stdout.write(text)
        sys.stdout.flush()
        while True:
            if self.pressed():
                raise KeyboardInterrupt
            ready, _, _ = select.select([stream], [], [], 0.1)
            if ready:  # a terminal in line mode: a whole line (or end of input) is there
                line = stream.readline()
                if not line:
                    raise EOFError
                return line.rstrip("\n")

    def pressed(self) -> bool:
        """Whether Ctrl-C was pressed (outside the prompt) since the last call."""
        if self.active and signal.SIGINT in signal.sigpending():
            signal.sigwait({signal.SIGINT})
            return True
        return False


def speak(
    session: Any, message: str, out: TextIO, interactive: bool, decode: Any, ctrl_c: CtrlC
) -> None:
    """Decode the reply to ``message``: streamed to ``out`` when interactive (``bot> `` and
    the words as they come), else printed as one line at the end. Ctrl-C stops it."""
    printed = ""
    text = ""
    stopped = False

    def stop() -> bool:
        nonlocal stopped
        stopped = stopped or ctrl_c.pressed()
        return stopped

    if interactive:
        print("bot> ", end="", file=out, flush=True)
    for text in session.stream_reply(message, decode, stop=stop):
        if not interactive:
            continue
        if text.startswith(printed):
            print(text[len(printed) :], end="", file=out, flush=True)
        else:  # the detokeniser revised earlier characters: rewrite the line
            print(f"\r\033[Kbot> {text}", end="", file=out, flush=True)
        printed = text
    print(text if not interactive else "", file=out, flush=True)
    if stopped:
        note("(reply stopped)")


def run_loop(
    session: Any,
    stream: TextIO,
    out: TextIO,
    interactive: bool,
    decode: Any,
    error_types: tuple[type[BaseException], ...],
    ctrl_c: CtrlC | None = None,
) -> int:
    """Read messages from ``stream`` until /quit or end of input; returns the exit code.

    Undecodable bytes in a message are replaced (with a notice naming ``<stdin>:N``), so
    a stray byte never ends the conversation."""
    ctrl_c = ctrl_c or CtrlC()
    number = 0
    while True:
        number += 1
        if interactive:
            try:
                line = ctrl_c.prompt("you> ")
            except (EOFError, KeyboardInterrupt):
                print(file=out)
                return 0
        else:
            with ctrl_c.deliverable():
                line = stream.readline()
            if not line:
                return 0
        text, notices = line_io.clean_text(line.rstrip("\r\n"))
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
            speak(session, message, out, interactive, decode, ctrl_c)
        except error_types as error:
            if interactive:
                print(file=out, flush=True)
            note(f"error: {error}")
            if not interactive:
                print(file=out, flush=True)
        else:
            shortened = truncation_notice(session, message)
            if shortened:
                note(shortened if interactive else f"<stdin>:{number}: {shortened}")


def truncation_notice(session: Any, message: str) -> str | None:
    """The notice ``translate`` prints for an input longer than the model's
    ``data.max_source_length`` tokens: the message alone did not fit, so the model saw it
    shortened (context turns are dropped first, silently: that is how chat works)."""
    tokenizer = getattr(getattr(session, "translator", None), "source_tokenizer", None)
    limit = getattr(session, "max_source_length", None)
    if tokenizer is None or not isinstance(limit, int):
        return None
    if len(tokenizer.encode(message)) <= limit:
        return None
    return (
        f"message is longer than the model's {limit} tokens (data.max_source_length); "
        "it was shortened to fit"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet.setup()  # before TensorFlow loads
    with CtrlC() as ctrl_c:  # before TensorFlow starts threads
        return chat(args, ctrl_c)


def chat(args: argparse.Namespace, ctrl_c: CtrlC) -> int:
    try:
        paths = open_run(args.model)
        config = load_run_config(paths.config)
        decode = resolve_decode(config, overrides_from_args(args))  # before TensorFlow loads
        if args.context_turns is not None and args.context_turns < 0:
            raise ConfigError("--context-turns must be >= 0")
        backward = args.backward_model
        if decode.mmi_lambda is not None:
            backward = require_backward(paths.root, config, backward)
        from seq2seq.data.dialogue import ChatSession
        from seq2seq.inference.translator import InputError, Translator

        translator = Translator.from_run(paths.root, backward=backward)
    except (RunError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if ctrl_c.pressed():  # Ctrl-C while the model loaded
        return 130
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
            decode,
            (InputError, ConfigError, RunError),
            ctrl_c,
        )
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        return line_io.silence_stdout()
    except KeyboardInterrupt:  # Ctrl-C outside a reply and the prompt: end quietly
        print(file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
