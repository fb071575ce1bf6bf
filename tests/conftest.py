"""Shared fixtures. Tests that need the project's ``../shared`` data skip with a clear reason when it is absent
(a user's clone); set POSEDISTILL_SHARED to point elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("POSEDISTILL_SHARED", ROOT.parent / "shared"))
TEST_DATA = Path(__file__).resolve().parent / "data"


def shared_path(*parts: str) -> Path:
    """Path under ../shared, or skip the test when it is missing."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"needs the shared data folder: {p} not found (set POSEDISTILL_SHARED)")
    return p


@pytest.fixture
def shared() -> Path:
    return shared_path()


@pytest.fixture
def fixtures_dir() -> Path:
    return shared_path("data", "fixtures")


@pytest.fixture
def reference_dir() -> Path:
    return shared_path("reference")


@pytest.fixture
def one_torch_thread():
    """Tiny models on shared cores: one torch thread is faster than several fighting over them."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
