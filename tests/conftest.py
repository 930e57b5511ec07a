"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The real corpora: $SEQ2SEQ_DATA_DIR, else <repo>/../shared/data; skip if absent."""
    folder = Path(os.environ.get("SEQ2SEQ_DATA_DIR") or REPO.parent / "shared" / "data")
    if not folder.is_dir():
        pytest.skip(f"shared corpora not found at {folder}; set SEQ2SEQ_DATA_DIR to run these")
    return folder
