"""Shared fixtures: the real public-domain corpora beside the project, when present."""

import os
from pathlib import Path

import pytest
import torch

# Tiny tensors dominate the suite: one thread avoids OpenMP hand-offs that cost more
# than the arithmetic, and keeps timings steady on a shared 2-core machine.
torch.set_num_threads(1)

SHARED_CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"


def shared_corpus(name: str) -> Path:
    """Path of ../shared/corpora/NAME, or skip the test with the reason.

    CI (the environment variable CI set) always has ../shared/corpora, so there a
    missing corpus fails the test instead: a skip would hide that the suite did not run.
    """
    path = SHARED_CORPORA / name
    if not path.is_file():
        reason = f"{path} is absent (only CI and developers have ../shared/corpora)"
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return path


@pytest.fixture
def tinyshakespeare() -> Path:
    return shared_corpus("tinyshakespeare.txt")


@pytest.fixture
def sherlock() -> Path:
    return shared_corpus("sherlock.txt")
