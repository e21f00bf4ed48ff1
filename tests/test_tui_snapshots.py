"""SVG snapshots of every toytui screen at 100x32 (and the Corpus tab at 80x24).

What is drawn must not change from run to run or machine to machine: the corpora are
fixtures written here (the bundled folder is pointed at one, so edits to the real
songbook do not matter), every folder is a relative name under a temporary working
directory, the tokenizer is deterministic, and the loss plot is fed fixed numbers
rather than a timed training run. Regenerate with ``--snapshot-update``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from toytui.app import ToyTUI
from toytui.widgets.loss_plot import LossPlot

SIZE = (100, 32)
SONGBOOK = (
    "# Lantern Song\n\n"
    "light the lantern, light the lane\n"
    "the carts come home through the rain\n\n"
    "# Harbour Song\n\n"
    "the gulls go round and the boats come in\n"
    "we mend the nets and we start again\n"
) * 4
TINY = "the kettle hums a copper tune\nthe window holds a paper moon\n" * 6


@pytest.fixture
def snap_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fixed corpora, empty settings, relative folders: a reproducible first start."""
    from toytorch.corpora import registry

    bundled = tmp_path / "bundled"
    bundled.mkdir()
    (bundled / "songbook.txt").write_text(SONGBOOK, encoding="utf-8")
    monkeypatch.setattr(registry, "bundled_dir_candidates", lambda: [bundled])
    (tmp_path / "corpora").mkdir()
    (tmp_path / "corpora" / "tiny.txt").write_text(TINY, encoding="utf-8")
    monkeypatch.setenv("TOYTUI_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("TOYTORCH_CORPORA_DIR", str(tmp_path / "corpora"))
    monkeypatch.setenv("TOYTORCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


async def until(pilot, condition, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.05)


async def corpus_loaded(pilot) -> None:
    await until(pilot, lambda: pilot.app.corpus is not None)
    await pilot.pause()


async def show(pilot, tab: str) -> None:
    await corpus_loaded(pilot)
    await pilot.app.run_action(f"show_tab('{tab}')")
    await pilot.pause()
    pilot.app.screen.set_focus(None)  # no blinking cursor in the picture
    await pilot.pause()


def test_corpus_screen(snap_compare, snap_env: Path) -> None:
    async def run_before(pilot) -> None:
        await show(pilot, "corpus")

    assert snap_compare(ToyTUI(), terminal_size=SIZE, run_before=run_before)


def test_corpus_screen_80x24(snap_compare, snap_env: Path) -> None:
    async def run_before(pilot) -> None:
        await show(pilot, "corpus")

    assert snap_compare(ToyTUI(), terminal_size=(80, 24), run_before=run_before)


def test_tokenizer_screen_after_training(snap_compare, snap_env: Path) -> None:
    async def run_before(pilot) -> None:
        await show(pilot, "tokenizer")
        pilot.app.query_one("#tok-kind").value = "word"
        pilot.app.query_one("#tok-train").press()
        await until(pilot, lambda: pilot.app.tokenizer is not None)
        await pilot.pause()
        pilot.app.screen.set_focus(None)
        await pilot.pause()

    assert snap_compare(ToyTUI(), terminal_size=SIZE, run_before=run_before)


def test_train_screen_with_form_errors(snap_compare, snap_env: Path) -> None:
    async def run_before(pilot) -> None:
        await show(pilot, "train")
        pilot.app.query_one("#n_head").value = "3"
        pilot.app.query_one("#lr").value = "1e-3x"
        await pilot.pause()

    assert snap_compare(ToyTUI(), terminal_size=SIZE, run_before=run_before)


def test_train_screen_loss_plot(snap_compare, snap_env: Path) -> None:
    async def run_before(pilot) -> None:
        await show(pilot, "train")
        train = [(s, 4.0 * 0.97**s + 1.0) for s in range(1, 61)]
        val = [(s, 4.0 * 0.97**s + 1.2) for s in (20, 40, 60)]
        pilot.app.query_one(LossPlot).add(train, val)
        await pilot.pause()

    assert snap_compare(ToyTUI(), terminal_size=SIZE, run_before=run_before)


def test_generate_screen(snap_compare, snap_env: Path) -> None:
    async def run_before(pilot) -> None:
        await show(pilot, "generate")

    assert snap_compare(ToyTUI(), terminal_size=SIZE, run_before=run_before)


def test_classify_screen(snap_compare, snap_env: Path) -> None:
    async def run_before(pilot) -> None:
        await show(pilot, "classify")

    assert snap_compare(ToyTUI(), terminal_size=SIZE, run_before=run_before)


def test_help_screen(snap_compare, snap_env: Path) -> None:
    async def run_before(pilot) -> None:
        await corpus_loaded(pilot)
        await pilot.press("f1")
        await pilot.pause()

    assert snap_compare(ToyTUI(), terminal_size=SIZE, run_before=run_before)


def test_light_theme(snap_compare, snap_env: Path) -> None:
    async def run_before(pilot) -> None:
        await show(pilot, "train")
        await pilot.press("ctrl+t")
        await pilot.pause()

    assert snap_compare(ToyTUI(), terminal_size=SIZE, run_before=run_before)
