"""Shared fixtures: the real public-domain corpora beside the project, when present."""

from pathlib import Path

import pytest

SHARED_CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"


def shared_corpus(name: str) -> Path:
    """Path of ../shared/corpora/NAME, or skip the test with the reason."""
    path = SHARED_CORPORA / name
    if not path.is_file():
        pytest.skip(f"{path} is absent (only CI and developers have ../shared/corpora)")
    return path


@pytest.fixture
def tinyshakespeare() -> Path:
    return shared_corpus("tinyshakespeare.txt")


@pytest.fixture
def sherlock() -> Path:
    return shared_corpus("sherlock.txt")
