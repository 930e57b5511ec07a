"""Bounded load check of a local app: concurrent requests, or first requests after a start.

    python scripts/load_check.py [--url http://127.0.0.1:7860/] [--clients 20]
        [--requests 20] [--model NAME]
    python scripts/load_check.py --fresh-starts 5 --models runs [--model NAME]

Each client (a thread with its own ``gradio_client.Client``) sends ``--requests``
translate calls one after another; all clients run at once. It reports how many calls
failed and the latency p50/p95, then exits (non-zero when any call failed). Only
loopback URLs are accepted: this is a check of your own machine, not a load generator.

``--fresh-starts N`` instead starts ``python -m apps.web --models DIR`` N times on a free
loopback port and, as soon as each answers, times its first translation and then one
sentence of each of several new lengths (the stalls a new user meets: model loading,
tracing, compiling), then stops it. It reports p50/p95 of the time to answer, of the first
translation and of the first sentence of a new length.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

os.environ.setdefault("HF_HUB_OFFLINE", "1")

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
SENTENCES = ["Hola.", "¿Cómo estás?", "Tengo hambre.", "Me gusta leer libros.", "Gracias."]
DECODING = ["greedy", 5, 1, 1.0, 0, 1.0, 40]  # method, beam, n-best, temp, top-k, top-p, max
# Sentences of growing length (written for this check), each one new to a fresh app.
NEW_LENGTHS = [
    "Sí.",
    "¿Qué hora es ahora?",
    "Mañana vamos a la playa con mis dos hermanos.",
    "No sé si podré terminar este trabajo antes de que llegue mi jefe a la oficina.",
    "Cuando era pequeño, mi abuela me contaba historias de su pueblo cada noche antes de "
    "dormir, y yo las escuchaba con los ojos muy abiertos.",
]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:7860/", help="the running app")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients (<= 64)")
    parser.add_argument("--requests", type=int, default=20, help="requests per client (<= 200)")
    parser.add_argument("--model", help="translation run name (default: the app's first)")
    parser.add_argument("--timeout", type=float, default=600, help="overall limit in seconds")
    parser.add_argument(
        "--fresh-starts", type=int, metavar="N", help="start the app N times (<= 20); see above"
    )
    parser.add_argument("--models", help="models folder for --fresh-starts")
    args = parser.parse_args(argv)
    if args.fresh_starts is not None:
        if not 1 <= args.fresh_starts <= 20:
            parser.error("--fresh-starts must be 1..20")
        if not args.models:
            parser.error("--fresh-starts needs --models DIR")
    host = urlparse(args.url).hostname
    if host not in LOOPBACK:
        parser.error(f"--url must point at this machine (127.0.0.1/localhost), not {host!r}")
    if not 1 <= args.clients <= 64 or not 1 <= args.requests <= 200:
        parser.error("--clients must be 1..64 and --requests 1..200")
    return args


def first_model(client) -> str:
    """The default of the translate endpoint's model dropdown."""
    info = client.view_api(print_info=False, return_format="dict")
    for parameter in info["named_endpoints"]["/translate"]["parameters"]:
        if parameter.get("parameter_name") == "run_name" or parameter.get("label") == (
            "translation model"
        ):
            default = parameter.get("parameter_default")
            if default:
                return default
    raise SystemExit("the app offers no translation model; train one first")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def connect(url: str, process: subprocess.Popen, deadline: float):
    """A client of the app at ``url`` as soon as it answers (the app's process must live)."""
    from gradio_client import Client

    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the app exited with status {process.returncode}")
        try:
            return Client(url, verbose=False, download_files=False, analytics_enabled=False)
        except Exception:  # not listening yet
            time.sleep(0.1)
    raise SystemExit(f"the app did not answer at {url} before the --timeout")


def fresh_start(args: argparse.Namespace, log) -> dict[str, list[float]]:
    """One app start: seconds to answer, first translation, first sentence of new lengths."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    command = [sys.executable, "-m", "apps.web", "--models", args.models, "--port", str(port)]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        client = connect(url, process, time.monotonic() + args.timeout)
        ready = time.perf_counter() - started
        model = args.model or first_model(client)
        times = []
        for sentence in SENTENCES[:1] + NEW_LENGTHS:
            begun = time.perf_counter()
            client.predict(sentence, model, *DECODING, api_name="/translate")
            times.append(time.perf_counter() - begun)
    finally:
        process.terminate()
        process.wait(timeout=60)
    return {
        "ready": [ready],
        "first": times[:1],
        "command_to_first": [ready + times[0]],
        "new_length": times[1:],
    }


def fresh_starts(args: argparse.Namespace) -> int:
    results: dict[str, list[float]] = {
        "ready": [],
        "first": [],
        "command_to_first": [],
        "new_length": [],
    }
    with tempfile.TemporaryFile() as log:
        for number in range(args.fresh_starts):
            for key, values in fresh_start(args, log).items():
                results[key].extend(values)
            print(
                f"start {number + 1}: answered after {results['ready'][-1]:.1f} s, first "
                f"translation {results['first'][-1] * 1000:.0f} ms, new lengths "
                + " ".join(f"{t * 1000:.0f}" for t in results["new_length"][-len(NEW_LENGTHS) :])
                + " ms",
                flush=True,
            )
    labels = {
        "ready": "app answers after",
        "first": "first translation",
        "command_to_first": "command to first translation",
        "new_length": "first sentence of a new length",
    }
    for key, label in labels.items():
        values = results[key]
        print(
            f"{label}: p50 {percentile(values, 0.5) * 1000:.0f} ms  "
            f"p95 {percentile(values, 0.95) * 1000:.0f} ms  (n={len(values)})"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.fresh_starts is not None:
        return fresh_starts(args)
    from gradio_client import Client

    probe = Client(args.url, verbose=False, download_files=False, analytics_enabled=False)
    model = args.model or first_model(probe)
    deadline = time.monotonic() + args.timeout
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        client = Client(args.url, verbose=False, download_files=False, analytics_enabled=False)
        for i in range(args.requests):
            if time.monotonic() > deadline:
                with lock:
                    errors.append("skipped: overall --timeout reached")
                continue
            sentence = SENTENCES[(index + i) % len(SENTENCES)]
            started = time.perf_counter()
            try:
                client.predict(sentence, model, *DECODING, api_name="/translate")
            except Exception as error:  # count every failure, keep going
                with lock:
                    errors.append(f"{type(error).__name__}: {error}"[:200])
                continue
            with lock:
                latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.clients) as pool:
        list(pool.map(worker, range(args.clients)))
    wall = time.perf_counter() - started
    total = args.clients * args.requests
    print(f"url {args.url}  model {model}  clients {args.clients} x requests {args.requests}")
    print(f"requests {total}  ok {len(latencies)}  errors {len(errors)}  wall {wall:.1f}s")
    if latencies:
        print(
            f"latency p50 {percentile(latencies, 0.5) * 1000:.0f} ms  "
            f"p95 {percentile(latencies, 0.95) * 1000:.0f} ms  "
            f"mean {statistics.fmean(latencies) * 1000:.0f} ms  "
            f"throughput {len(latencies) / wall:.1f} req/s"
        )
    for message in sorted(set(errors))[:5]:
        print(f"error: {message}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
