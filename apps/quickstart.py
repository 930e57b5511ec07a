"""``python -m apps.quickstart``: open the app at once; train the quickstart models behind it.

The newcomer's one command. The web app starts on 127.0.0.1 over the models folder within
seconds, while ``runs/quickstart`` (Spanish -> English) and then ``runs/quickstart-chat``
(DailyDialog) train in the background, one after the other, in a ``nice``d subprocess
(``apps.jobs``): two at once would halve each other's speed on a laptop and slow the app. Each
model appears in its tab as soon as its run has saved a first epoch, marked as training, and
the app switches to each better epoch as it is saved (the chat trains in short epochs of 300
steps: a first model after a few minutes, a better one every few minutes); the app says which
run is still training, and the terminal shows one progress bar per model, read from its run
folder.

A finished run is reused, so the second start opens the app in a few seconds; a run that was
stopped (Ctrl-C stops the app and the training with it) is resumed where it stopped. Extra
arguments go to ``python -m apps.web`` (e.g. ``--port 7861``).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from apps.jobs import JobError, Request, TrainingJobs, check_writable
from apps.run_status import FINISHED, STOPPED, TRAINING, run_status
from seq2seq.cli import quiet

QUICKSTART_PRESETS = ("quickstart", "quickstart-chat")
BAR_FORMAT = "{desc:<16}{percentage:3.0f}%|{bar:20}| {unit}"  # unit: the status line


def pending_requests(
    models: Path, presets: tuple[str, ...], overrides: tuple[str, ...] = ()
) -> list[Request]:
    """What is left to train: a new run for a missing preset, ``--resume`` for one that
    stopped half-way (or that another process trains now: the queue waits for it); a
    finished one is reused."""
    requests = []
    for preset in presets:
        status = run_status(models / preset)
        if status is None:
            requests.append(Request(preset, preset=preset, overrides=overrides))
        elif status.state == FINISHED:
            print(f"{models / preset}: trained, reused")
        else:
            requests.append(Request(preset, resume=True))
    return requests


def set_status(bar, text: str) -> None:
    """The bar's status line (tqdm's ``unit`` field, which the bar format prints as is)."""
    bar.unit = text


class ProgressBars:
    """One tqdm bar per queued model in the terminal, updated from the run folders."""

    def __init__(self, jobs: TrainingJobs, names: list[str], interval_s: float = 1.0):
        from tqdm import tqdm

        self.jobs = jobs
        self.interval_s = interval_s
        self.bars = {
            name: tqdm(total=100, desc=name, position=i, bar_format=BAR_FORMAT, leave=True)
            for i, name in enumerate(names)
        }
        self.done: set[str] = set()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.loop, name="progress-bars", daemon=True)

    def start(self) -> ProgressBars:
        self.thread.start()
        return self

    def loop(self) -> None:
        while not self.update() and not self.stopped.wait(self.interval_s):
            pass
        self.update()
        self.close()

    def update(self) -> bool:
        """Redraw every bar; True once no bar is left to follow."""
        statuses = {status.name: status for status in self.jobs.statuses()}
        queued = {request.name for request in self.jobs.waiting}
        for name, bar in self.bars.items():
            if name in self.done:
                continue
            status = statuses.get(name)
            failure = self.jobs.failures.get(name)
            if failure:
                set_status(bar, "failed")
                bar.write(f"{name}: training failed:\n{failure.message}", file=sys.stderr)
                self.done.add(name)
            elif status is not None and status.state == FINISHED:
                bar.n = 100
                set_status(bar, f"{status.summary}: ready in the app")
                self.done.add(name)
            elif status is not None and (status.state != STOPPED or name in queued):
                bar.n = round(status.fraction * 100, 1)
                text = status.summary if status.state != STOPPED else "waits"
                if (
                    status.state == TRAINING
                    and (self.jobs.models_dir / name / "model.keras").is_file()
                ):
                    text += " · in the app"
                set_status(bar, text)
            elif name in queued:
                set_status(bar, "waits its turn")
            else:
                set_status(bar, "stopped: the next start resumes it")
                self.done.add(name)
            bar.refresh()
        return len(self.done) == len(self.bars)

    def write(self, text: str) -> None:
        """Print ``text`` above the bars (printed as is, it would garble them)."""
        from tqdm import tqdm

        tqdm.write(text)

    def close(self) -> None:
        self.stopped.set()
        for bar in self.bars.values():
            bar.close()


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="python -m apps.quickstart", description=__doc__)
    parser.add_argument("--models", default="runs", help="folder of run folders (default runs/)")
    parser.add_argument(
        "--no-app", action="store_true", help="train (or resume) only, do not launch the app"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="a setting for the quickstart models trained from scratch (repeatable), "
        "e.g. --set train.epochs=2",
    )
    return parser.parse_known_args(argv)


def main(argv: list[str] | None = None) -> int:
    args, web_args = parse_args(argv)
    quiet.setup("--verbose" in web_args)  # before anything imports TensorFlow
    models = Path(args.models)
    jobs = TrainingJobs(models)
    try:
        check_writable(models)
    except JobError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    requests = pending_requests(models, QUICKSTART_PRESETS, tuple(args.set))
    bars = None
    if requests:
        names = [request.name for request in requests]
        print(f"training in the background (nice): {', '.join(names)}; Ctrl-C stops and keeps it")
        queue = jobs.run_queue(requests)
        bars = ProgressBars(jobs, names).start()
    # Ctrl-C or a plain kill: stop the trainer too, leaving its run resumable.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if args.no_app:
            if requests:
                queue.join()
                bars.stopped.set()
                bars.thread.join()
            return max((max(f.code, 1) for f in jobs.failures.values()), default=0)
        from apps import web

        announce = bars.write if bars is not None else print
        return web.main(["--models", str(models), *web_args], jobs=jobs, announce=announce)
    except KeyboardInterrupt:
        return 130
    finally:
        jobs.cancel()
        if jobs.job is not None and jobs.job.cancelled:
            print("training stopped; the next start resumes it", file=sys.stderr)
        if bars is not None:
            bars.close()


if __name__ == "__main__":
    sys.exit(main())
