"""Bounded load check of a running local app: concurrent translate requests.

    python scripts/load_check.py [--url http://127.0.0.1:7860/] [--clients 20]
        [--requests 20] [--model NAME]

Each client (a thread with its own ``gradio_client.Client``) sends ``--requests``
translate calls one after another; all clients run at once. It reports how many calls
failed and the latency p50/p95, then exits (non-zero when any call failed). Only
loopback URLs are accepted: this is a check of your own machine, not a load generator.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

os.environ.setdefault("HF_HUB_OFFLINE", "1")

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
SENTENCES = ["Hola.", "¿Cómo estás?", "Tengo hambre.", "Me gusta leer libros.", "Gracias."]
DECODING = ["greedy", 5, 1, 1.0, 0, 1.0, 40]  # method, beam, n-best, temp, top-k, top-p, max


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
    args = parser.parse_args(argv)
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
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
