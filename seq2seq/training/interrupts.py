"""Ctrl-C and SIGTERM during training: raised as exceptions, and only between two steps.

``python -m seq2seq.train`` turns SIGTERM into ``Terminated`` (``catch_sigterm``), so that
it ends training the way Ctrl-C's ``KeyboardInterrupt`` does. While an epoch's steps run,
``BetweenSteps`` holds both back until the step in progress has ended: the weights, the
optimizer state and the count of batches done then agree, and the loop can save a mid-epoch
state that ``--resume`` continues exactly (``seq2seq.training.mid_epoch``).

No stdlib module beyond ``signal``: the command line imports this before TensorFlow loads.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType

DEFERRED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Terminated(BaseException):
    """SIGTERM (``kill PID``, a scheduler's time limit or preemption), raised like Ctrl-C's
    KeyboardInterrupt so that training ends the same way: the epoch so far kept, a one-line
    resume hint, exit 143 (128 + SIGTERM)."""


INTERRUPTS = (KeyboardInterrupt, Terminated)


def raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def catch_sigterm() -> None:
    """SIGTERM raises ``Terminated`` from now on (main thread only, else left as it is)."""
    try:
        signal.signal(signal.SIGTERM, raise_terminated)
    except ValueError:  # not the main thread (train() called from a library): leave it
        pass


Handler = Callable[[int, FrameType | None], object]


class BetweenSteps:
    """Hold Ctrl-C and SIGTERM back while a step runs; ``check()`` after each step raises
    the held one, through its own handler (``KeyboardInterrupt``, ``Terminated``).

    Why: raised in the middle of a step, the exception cannot tell whether the optimizer has
    applied that step, so a saved state could count one batch too many or too few. Only
    Python handlers are held (SIG_DFL and SIG_IGN stay as they are), and only in the main
    thread, the one thread Python runs signal handlers in. A compiled step is one call into
    TensorFlow, which a Python handler never interrupts anyway, so holding the signal back
    to the step's end delays it by less than a step. A signal left held when the block ends
    without an error is raised then; after an error the error goes on alone.
    """

    def __init__(self) -> None:
        self.saved: dict[int, Handler] = {}
        self.held: int | None = None

    def __enter__(self) -> BetweenSteps:
        if threading.current_thread() is not threading.main_thread():
            return self
        for signum in DEFERRED_SIGNALS:
            handler = signal.getsignal(signum)
            if callable(handler):
                self.saved[signum] = handler
                signal.signal(signum, self.hold)
        return self

    def hold(self, signum: int, frame: FrameType | None) -> None:
        if self.held is None:
            self.held = signum

    def check(self) -> None:
        """Raise the held signal's exception now, if one arrived during the step."""
        if self.held is not None:
            signum, self.held = self.held, None
            self.saved[signum](signum, None)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for signum, handler in self.saved.items():
            signal.signal(signum, handler)
        if kind is None:
            self.check()
