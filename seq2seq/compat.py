"""The one place this project reaches private Keras and TensorFlow APIs.

Three things used here are not public API, so an upgrade may move them:

- ``keras.src.backend.rnn`` and ``keras.src.backend.cudnn_ok``: Keras's generic recurrent
  loop and its cuDNN test, which ``seq2seq.model.fast_rnn`` runs with a shortened step;
- ``tensorflow.python.framework.convert_to_constants.convert_variables_to_constants_v2``:
  freezing variables into constants for the TFLite export (``seq2seq.export``);
- the coordination service: ``tensorflow.compiler.xla.tsl.protobuf.coordination_config_pb2``
  and the eager context's ``configure_coordination_service`` and
  ``_coordination_service_config``, which bound the waits of multi-worker training
  (``seq2seq.training.cluster``).

Each is reached through a function below and imported only when that function is called.
One that moved raises ``CompatError``, naming the API, what it is for, the installed
versions and the ones this code was tested with (``TESTED``), instead of an ``ImportError``
or ``AttributeError`` deep inside training or an export. ``version_note()`` says whether the
installed versions are the tested ones.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib import metadata
from typing import Any

# The versions these private APIs were checked against (major.minor).
TESTED = {"tensorflow": "2.21", "keras": "3.15"}


class CompatError(RuntimeError):
    """A private Keras/TensorFlow API this project uses is not where it was."""


def installed_version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def version_note() -> str:
    """``""`` when the installed TensorFlow and Keras are the tested major.minor versions,
    else a sentence naming the difference."""
    different = []
    for package, tested in TESTED.items():
        installed = installed_version(package)
        if ".".join(installed.split(".")[:2]) != tested:
            different.append(f"{package} {installed} is installed, {tested} was tested")
    return "; ".join(different)


def private(module: str, name: str, used_for: str) -> Any:
    """``module.name``, or ``CompatError`` saying that an upgrade moved it."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        raise CompatError(moved(f"{module}.{name}", used_for)) from error


def moved(api: str, used_for: str) -> str:
    tested = ", ".join(f"{package} {version}" for package, version in TESTED.items())
    note = version_note() or "the installed versions are the tested ones"
    return (
        f"seq2seq uses {api}, a private API, for {used_for}; it is not there in this "
        f"installation ({note}). Install the tested versions ({tested}: "
        "pip install -e . in a fresh virtual environment), or update seq2seq/compat.py."
    )


def keras_rnn() -> Callable:
    """``keras.src.backend.rnn``: Keras's generic recurrent loop (masking, ``go_backwards``,
    ``zero_output_for_mask``), the loop the fast RNN path runs its shortened step in."""
    return private("keras.src.backend", "rnn", "the fast RNN path (seq2seq/model/fast_rnn.py)")


def keras_cudnn_ok() -> Callable:
    """``keras.src.backend.cudnn_ok``: whether Keras would run a GRU/LSTM as a cuDNN kernel."""
    return private(
        "keras.src.backend", "cudnn_ok", "choosing cuDNN or the fast RNN path (fast_rnn.py)"
    )


def freeze_variables(concrete_function, lower_control_flow: bool = False):
    """``convert_variables_to_constants_v2``: the function with its variables as constants
    (the TFLite interpreter cannot read resource variables inside a WHILE body)."""
    convert = private(
        "tensorflow.python.framework.convert_to_constants",
        "convert_variables_to_constants_v2",
        "freezing variables in the TFLite export (seq2seq/export.py)",
    )
    return convert(concrete_function, lower_control_flow=lower_control_flow)


def configure_coordination_service(
    leader: str,
    jobs: dict[str, int],
    register_timeout_ms: int,
    heartbeat_timeout_ms: int,
    shutdown_timeout_ms: int,
) -> None:
    """Set TensorFlow's coordination service for a multi-worker run before the strategy is
    made: ``leader`` (a task name, e.g. ``/job:worker/replica:0/task:0``), the number of
    tasks per job, and bounded waits instead of TensorFlow's hour-long defaults. Connecting
    then waits at a barrier for every task, bounded by the register timeout; without it a
    missing peer makes the first collective wait for ever."""
    used_for = "bounding the waits of multi-worker training (seq2seq/training/cluster.py)"
    protos = private(
        "tensorflow.compiler.xla.tsl.protobuf.coordination_config_pb2", "CoordinatedJob", used_for
    )
    context = private("tensorflow.python.eager.context", "context", used_for)()
    configure = getattr(context, "configure_coordination_service", None)
    if configure is None or not hasattr(context, "_coordination_service_config"):
        raise CompatError(moved("the eager context's coordination service config", used_for))
    configure(
        service_type="standalone",
        service_leader=leader,
        cluster_register_timeout_in_ms=register_timeout_ms,
        heartbeat_timeout_in_ms=heartbeat_timeout_ms,
        shutdown_barrier_timeout_in_ms=shutdown_timeout_ms,
        coordinated_jobs=[protos(name=job, num_tasks=count) for job, count in jobs.items()],
    )
    config = context._coordination_service_config
    if not hasattr(config, "cluster_register_with_barrier"):
        raise CompatError(
            moved("CoordinationServiceConfig.cluster_register_with_barrier", used_for)
        )
    config.cluster_register_with_barrier = True
