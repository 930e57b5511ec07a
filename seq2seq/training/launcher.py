"""``train --local-workers N``: a multi-worker cluster on one machine, for trying it out.

It starts N ordinary ``python -m seq2seq.train`` processes, each with its own ``TF_CONFIG``
on 127.0.0.1 and a free port, and prefixes their output with ``[worker i]``. If one worker
fails, the others are stopped at once (a survivor would otherwise wait in an all-reduce for
a peer that is gone) and the launcher exits non-zero, naming the worker and its last error.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

POLL_SECONDS = 0.2
STOP_GRACE_SECONDS = 10.0
ERROR_WORDS = ("error", "Error", "Traceback", "Aborted", "fatal", "FATAL")


def free_ports(count: int) -> list[int]:
    """Ports the kernel reports free on 127.0.0.1 (held together so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probe.bind(("127.0.0.1", 0))
            sockets.append(probe)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for probe in sockets:
            probe.close()


def local_tf_configs(count: int) -> list[str]:
    addresses = [f"127.0.0.1:{port}" for port in free_ports(count)]
    return [
        json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": i}})
        for i in range(count)
    ]


def check_worker_count(count: int) -> None:
    cores = os.cpu_count() or 1
    if count < 1:
        raise ValueError(f"--local-workers is {count}; allowed: 1..{cores} (this machine's cores)")
    if count > cores:
        raise ValueError(
            f"--local-workers is {count} but this machine has {cores} CPU core(s); each worker "
            f"needs one (allowed: 1..{cores})"
        )


@dataclass
class Worker:
    index: int
    process: subprocess.Popen
    tail: deque = field(default_factory=lambda: deque(maxlen=40))

    def relay(self, stream) -> None:
        """Copy the worker's output line by line with its prefix; keep the last lines."""
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            self.tail.append(line)
            sys.stdout.write(f"[worker {self.index}] {line}\n")
            sys.stdout.flush()

    def last_error(self) -> str:
        for line in reversed(self.tail):
            if any(word in line for word in ERROR_WORDS):
                return line.strip()
        return self.tail[-1].strip() if self.tail else "(no output)"


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def start_workers(count: int, worker_args: Sequence[str]) -> list[Worker]:
    workers = []
    for index, tf_config in enumerate(local_tf_configs(count)):
        environment = dict(os.environ, TF_CONFIG=tf_config, PYTHONUNBUFFERED="1")
        process = subprocess.Popen(
            [sys.executable, "-m", "seq2seq.train", *worker_args],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        worker = Worker(index, process)
        threading.Thread(target=worker.relay, args=(process.stdout,), daemon=True).start()
        print(f"started worker {index} (pid {process.pid})", flush=True)
        workers.append(worker)
    return workers


def stop_all(workers: Sequence[Worker]) -> None:
    """SIGTERM the workers still running, then SIGKILL what is left after a grace period."""
    running = [w for w in workers if w.process.poll() is None]
    for worker in running:
        worker.process.terminate()
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for worker in running:
        try:
            worker.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()


def supervise(workers: Sequence[Worker]) -> int:
    """Wait for every worker; on the first failure stop the rest and report it."""
    try:
        while True:
            codes = [w.process.poll() for w in workers]
            failures = [w for w, c in zip(workers, codes, strict=True) if c not in (None, 0)]
            failed = failures[0] if failures else None
            if failed is not None:
                stop_all(workers)
                time.sleep(POLL_SECONDS)  # let the relay threads print the last lines
                print(
                    f"error: worker {failed.index} {describe_exit(failed.process.returncode)}; "
                    f"the other workers were stopped. Its last error: {failed.last_error()}",
                    file=sys.stderr,
                )
                return 1
            if all(c == 0 for c in codes):
                return 0
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        stop_all(workers)
        print("error: interrupted; all workers were stopped", file=sys.stderr)
        return 130


def interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run_local_workers(count: int, worker_args: Sequence[str]) -> int:
    """Start ``count`` workers with ``worker_args`` and supervise them to the end."""
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        return supervise(start_workers(count, worker_args))
    finally:
        signal.signal(signal.SIGTERM, previous)
