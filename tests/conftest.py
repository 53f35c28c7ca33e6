"""Shared test fixtures: where the real face data lives, and skipping (with the reason) where it does not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("DFD_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()
FACES_140K = SHARED_DATA / "faces-140k-mini"
LFW = SHARED_DATA / "lfw-faceswap"
RFF = SHARED_DATA / "real-and-fake-face"
MODERN = SHARED_DATA / "modern-faces-128"
WEB = SHARED_DATA / "web-faces-256"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def need(path: Path) -> Path:
    """Return ``path``, or skip the test saying which shared data folder is absent."""
    if not path.exists():
        pytest.skip(f"real face data not found at {path} (set DFD_SHARED_DATA or place ../shared/data)")
    return path


@pytest.fixture(scope="session")
def faces140k() -> Path:
    return need(FACES_140K)


@pytest.fixture(scope="session")
def lfw() -> Path:
    return need(LFW)


@pytest.fixture(scope="session")
def rff() -> Path:
    return need(RFF)


@pytest.fixture(scope="session")
def modern() -> Path:
    return need(MODERN)


@pytest.fixture(scope="session")
def web() -> Path:
    return need(WEB)
