"""Start-up noise off for the command lines and the app, real warnings kept.

TensorFlow prints a screenful before doing anything: C++ notes written before its logging
is set up (oneDNN, "Could not find cuda drivers", "failed call to cuInit" on a machine
without a GPU), which ``TF_CPP_MIN_LOG_LEVEL`` does not reach; later C++ log lines; and
the ``absl`` Python logger's INFO lines from tensorflow-datasets ("Load dataset info",
"Reusing dataset"). Dependencies add deprecation warnings about their own code.

``setup()`` is the first call of every entry point's ``main``, before TensorFlow is
imported. It sets ``TF_CPP_MIN_LOG_LEVEL=3`` (TensorFlow reports real errors as Python
exceptions, which stay), quiets the ``absl`` logger to warnings, ignores deprecation
warnings raised inside dependencies, and filters standard error while TensorFlow is
imported and looks for a GPU (the lines matched by ``NOISE`` are dropped; every other
line is written through). Warnings from Keras, TensorFlow's Python side and this
toolkit, and every error, still show.

``--verbose`` on a command, or ``SEQ2SEQ_VERBOSE=1``, turns all of this off (and is
passed on to worker processes through the environment).
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator

VERBOSE_ENV = "SEQ2SEQ_VERBOSE"

# C++ start-up lines of TensorFlow/XLA on a CPU-only machine (and absl's note about them).
NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called"
    r"|^[IWE]\d{4} [\d:.]+ +\d+ (port\.cc|cudart_stub\.cc|cuda_platform\.cc|cuda_executor\.cc"
    r"|cpu_feature_guard\.cc|cuda_dnn\.cc|cuda_fft\.cc|cuda_blas\.cc|util\.cc)"
    r"|^To enable the following instructions: .* rebuild TensorFlow"
    r"|^WARNING: All log messages before absl::InitializeLog"
)

# Packages whose own deprecation warnings a user of this toolkit can do nothing about.
DEPENDENCIES = ("tensorflow", "keras", "tensorflow_datasets", "google", "absl", "jax", "gradio")


def add_verbose_argument(parser) -> None:
    """``--verbose`` on an ``argparse`` parser, for ``setup(args.verbose)``."""
    parser.add_argument(
        "--verbose",
        action="store_true",
        help=f"show TensorFlow's start-up log and dependencies' deprecation warnings "
        f"(also {VERBOSE_ENV}=1)",
    )


def verbose_requested(verbose: bool = False) -> bool:
    return verbose or os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes")


def setup(verbose: bool = False) -> None:
    """Quiet TensorFlow's start-up and dependencies' deprecation notes (see the module
    docstring); ``verbose`` (or ``SEQ2SEQ_VERBOSE=1``) keeps everything instead."""
    if verbose_requested(verbose):
        os.environ[VERBOSE_ENV] = "1"
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.getLogger("absl").setLevel(logging.WARNING)
    for package in DEPENDENCIES:
        for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
            warnings.filterwarnings("ignore", category=category, module=rf"{package}(\.|$)")
    if "tensorflow" not in sys.modules and not any(
        isinstance(finder, QuietTensorFlowImport) for finder in sys.meta_path
    ):
        sys.meta_path.insert(0, QuietTensorFlowImport())


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """File descriptor 2 (C++ code writes there too) goes to a temporary file; on exit,
    its lines except ``NOISE`` are written to the real standard error, in order."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [
                line
                for line in captured.read().decode("utf-8", "replace").splitlines(keepends=True)
                if not NOISE.search(line)
            ]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


class QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Imports ``tensorflow`` (the first time anything does) inside ``filtered_stderr``,
    and lets it look for a GPU there, where it logs ``cuInit`` failures; then steps aside."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader

        class Loader(importlib.abc.Loader):
            def create_module(self, spec):
                return loader.create_module(spec)

            def exec_module(self, module):
                with filtered_stderr():
                    loader.exec_module(module)
                    module.config.list_physical_devices("GPU")

        spec.loader = Loader()
        return spec
