"""Which machines train together: ``TF_CONFIG`` checked up front, and the strategy.

A multi-worker run is described by ``TF_CONFIG`` (or a SLURM allocation). Everything here is
checked *before* TensorFlow starts its server, because TensorFlow answers a malformed cluster
or a port in use with a C++ abort or an endless wait: the user gets one clear line instead.
The strategy must be created before any other TensorFlow op, so ``make_strategy`` is the first
thing training calls.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
from dataclasses import dataclass

# TF_CONFIG's job names that take part in training ("evaluator"/"ps" are not supported).
TRAINING_JOBS = ("chief", "worker")


class ClusterError(ValueError):
    """TF_CONFIG or the cluster it describes cannot be used."""


@dataclass(frozen=True)
class ClusterTask:
    """This process's place in the cluster."""

    addresses: tuple[str, ...]  # every training task, chief first, as host:port
    index: int  # position of this task in ``addresses``

    @property
    def num_workers(self) -> int:
        return len(self.addresses)

    @property
    def is_chief(self) -> bool:
        return self.index == 0

    @property
    def address(self) -> str:
        return self.addresses[self.index]


def split_address(address: object, where: str) -> tuple[str, int]:
    if not isinstance(address, str) or address.count(":") != 1:
        raise ClusterError(f"TF_CONFIG: {where} is {address!r}; expected 'host:port'")
    host, port_text = address.split(":")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ClusterError(f"TF_CONFIG: {where} is {address!r}; expected 'host:port', port 1-65535")
    return host, int(port_text)


def parse_tf_config(text: str) -> ClusterTask:
    """Validate ``TF_CONFIG`` (cluster with chief/worker jobs, task type and index)."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise ClusterError(f"TF_CONFIG is not valid JSON: {error}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("cluster"), dict):
        raise ClusterError('TF_CONFIG needs a "cluster" mapping, e.g. {"worker": ["h1:2222", ...]}')
    cluster, task = raw["cluster"], raw.get("task")
    unknown = sorted(set(cluster) - set(TRAINING_JOBS))
    if unknown:
        raise ClusterError(
            f"TF_CONFIG: job {unknown[0]!r} is not supported; use 'worker' (and optionally one "
            "'chief')"
        )
    addresses: list[str] = []
    for job in TRAINING_JOBS:
        hosts = cluster.get(job, [])
        if not isinstance(hosts, list):
            raise ClusterError(f"TF_CONFIG: cluster.{job} must be a list of 'host:port'")
        for i, address in enumerate(hosts):
            split_address(address, f"cluster.{job}[{i}]")
            addresses.append(address)
    if len(cluster.get("chief", [])) > 1:
        raise ClusterError("TF_CONFIG: cluster.chief may hold one address only")
    if not addresses:
        raise ClusterError("TF_CONFIG: the cluster lists no workers")
    if len(set(addresses)) != len(addresses):
        raise ClusterError("TF_CONFIG: the same host:port appears twice in the cluster")
    if not isinstance(task, dict) or task.get("type") not in TRAINING_JOBS:
        raise ClusterError('TF_CONFIG needs "task": {"type": "worker" or "chief", "index": N}')
    index = task.get("index")
    jobs = cluster.get(task["type"], [])
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(jobs):
        raise ClusterError(
            f"TF_CONFIG: task.index is {index!r}; cluster.{task['type']} has {len(jobs)} "
            f"address(es), so it must be 0..{len(jobs) - 1}"
        )
    offset = len(cluster.get("chief", [])) if task["type"] == "worker" else 0
    return ClusterTask(tuple(addresses), offset + index)


def check_reachable(task: ClusterTask) -> None:
    """Fail early on what TensorFlow reports badly: unknown hosts, our own port taken."""
    for address in task.addresses:
        host, _ = split_address(address, "address")
        try:
            socket.getaddrinfo(host, None)
        except OSError:
            raise ClusterError(f"TF_CONFIG: host {host!r} ({address}) cannot be resolved") from None
    host, port = split_address(task.address, "this task's address")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("", port))
        except OSError as error:
            raise ClusterError(
                f"port {port} of this task ({task.address}, worker {task.index}) is not free: "
                f"{error.strerror}"
            ) from None


def cluster_task(strategy_name: str) -> ClusterTask | None:
    """This process's task when training on several machines, else ``None``.

    ``multi_worker`` needs ``TF_CONFIG`` or a SLURM allocation; ``auto`` goes multi-worker
    only when ``TF_CONFIG`` lists more than one task.
    """
    text = os.environ.get("TF_CONFIG", "").strip()
    if text:
        task = parse_tf_config(text)
        if strategy_name in ("default", "mirrored") and task.num_workers > 1:
            raise ClusterError(
                f"TF_CONFIG lists {task.num_workers} workers but train.strategy is "
                f"{strategy_name!r}; use train.strategy=multi_worker (or auto)"
            )
        return task if task.num_workers > 1 or strategy_name == "multi_worker" else None
    if strategy_name == "multi_worker" and not os.environ.get("SLURM_JOB_ID"):
        raise ClusterError(
            "train.strategy=multi_worker needs TF_CONFIG (or a SLURM job); to try it on one "
            "machine, pass --local-workers N"
        )
    return None


def make_strategy(strategy_name: str, timeout_seconds: int):
    """The strategy for this process; created first, before any other TensorFlow op."""
    import tensorflow as tf

    task = cluster_task(strategy_name)
    if task is not None:
        check_reachable(task)
        configure_coordination(task, timeout_seconds)
        with join_deadline(task, timeout_seconds + 30):
            try:
                return multi_worker_strategy(None)
            except tf.errors.OpError as error:
                raise ClusterError(not_formed_message(task, timeout_seconds, error)) from None
    if strategy_name == "multi_worker":  # SLURM
        resolver = tf.distribute.cluster_resolver.SlurmClusterResolver()
        return multi_worker_strategy(resolver)
    gpus = tf.config.list_logical_devices("GPU")
    if strategy_name == "mirrored" or (strategy_name == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def unreachable_peers(task: ClusterTask) -> list[str]:
    """Peers that do not accept a TCP connection right now."""
    missing = []
    for index, address in enumerate(task.addresses):
        if index == task.index:
            continue
        host, port = split_address(address, "address")
        try:
            socket.create_connection((host, port), timeout=2).close()
        except OSError:
            missing.append(f"worker {index} ({address})")
    return missing


def not_formed_message(task: ClusterTask, timeout_seconds: int, error=None) -> str:
    missing = unreachable_peers(task) or ["(every peer answers, but not all joined)"]
    reason = f" ({type(error).__name__})" if error is not None else ""
    return (
        f"the cluster did not form within {timeout_seconds} s (train.worker_timeout){reason}; "
        f"worker {task.index} ({task.address}) could not reach: {', '.join(missing)}. "
        "Start the same command on every host of TF_CONFIG."
    )


@contextlib.contextmanager
def join_deadline(task: ClusterTask, timeout_seconds: int):
    """Last resort if TensorFlow neither joins nor fails: report and exit.

    The register barrier normally fails after ``train.worker_timeout``; should it not, this
    watchdog ends the wait (TensorFlow swallows SIGTERM while it waits for peers).
    """

    def give_up() -> None:
        print(f"error: {not_formed_message(task, timeout_seconds)}", file=sys.stderr, flush=True)
        os._exit(2)

    watchdog = threading.Timer(timeout_seconds, give_up)
    watchdog.daemon = True
    watchdog.start()
    try:
        yield
    finally:
        watchdog.cancel()


def multi_worker_strategy(resolver):
    """RING collectives on CPU (NCCL needs GPUs); AUTO picks NCCL when GPUs are there."""
    import tensorflow as tf

    collectives = tf.distribute.experimental.CollectiveCommunication
    on_gpu = bool(tf.config.list_physical_devices("GPU"))
    implementation = collectives.AUTO if on_gpu else collectives.RING
    options = tf.distribute.experimental.CommunicationOptions(implementation=implementation)
    return tf.distribute.MultiWorkerMirroredStrategy(
        cluster_resolver=resolver, communication_options=options
    )


def configure_coordination(task: ClusterTask, timeout_seconds: int) -> None:
    """Bound the waits: a peer that never starts, or dies, ends the run instead of hanging.

    TensorFlow's defaults wait an hour for peers to register; the strategy keeps a
    coordination config set before it is created, so the timeouts are set here.
    """
    from seq2seq.compat import configure_coordination_service

    jobs = json.loads(os.environ["TF_CONFIG"])["cluster"]
    leader = "chief" if jobs.get("chief") else "worker"
    configure_coordination_service(
        leader=f"/job:{leader}/replica:0/task:0",
        jobs={job: len(jobs[job]) for job in TRAINING_JOBS if jobs.get(job)},
        register_timeout_ms=timeout_seconds * 1000,
        heartbeat_timeout_ms=min(timeout_seconds, 30) * 1000,
        shutdown_timeout_ms=timeout_seconds * 1000,
    )
