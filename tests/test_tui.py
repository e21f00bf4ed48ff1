"""Pilot tests of toytui: the whole job on a tiny corpus, the error paths, quitting
during training, settings, themes, and the keypress latency while a model trains.

Every test runs in a temporary folder with its own config, corpora and cache folders
(TOYTUI_CONFIG_DIR, TOYTORCH_CORPORA_DIR, TOYTORCH_CACHE_DIR), so nothing touches the
user's real settings.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import pytest
import torch
from textual import events

from toytorch.corpora import DEFAULT_CORPUS, resolve_corpus
from toytui.app import ToyTUI
from toytui.screens.confirm import ConfirmScreen
from toytui.screens.help import HelpScreen
from toytui.settings import Settings
from toytui.widgets.loss_plot import LossPlot

# Original verses written for these tests (about 900 characters).
TINY = (
    "the kettle hums a copper tune\n"
    "the window holds a paper moon\n"
    "we count the stairs and lose the key\n"
    "and laugh about it, you and me\n\n"
    "the kettle hums, the kettle sings\n"
    "of little rooms and little things\n"
    "the moon is paper, the tune is old\n"
    "the key is lost, the tea is cold\n\n"
) * 3
SIZE = (100, 32)
TINY_MODEL = {
    "n_layer": "1", "n_head": "2", "d_model": "16", "context": "16",
    "batch_size": "4", "max_steps": "6", "eval_every": "3", "lr": "3e-3",
}  # fmt: skip


@pytest.fixture
def tui_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh user: settings, corpora and caches all in tmp_path; cwd is tmp_path."""
    monkeypatch.setenv("TOYTUI_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("TOYTORCH_CORPORA_DIR", str(tmp_path / "corpora"))
    monkeypatch.setenv("TOYTORCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpora").mkdir()
    (tmp_path / "corpora" / "tiny.txt").write_text(TINY, encoding="utf-8")
    return tmp_path


async def wait_for(pilot, condition, timeout: float = 120.0, what: str = "") -> None:
    """Let the app run until ``condition()`` holds (fail after ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await pilot.pause(0.05)


def text_of(app, selector: str) -> str:
    return str(app.query_one(selector).content)


async def choose_corpus(pilot, name: str) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: app.corpus is not None, what="the first corpus")
    options = app.query_one("#corpus-list")
    index = next(
        i
        for i in range(options.option_count)
        if options.get_option_at_index(i).id == name
    )
    options.focus()
    options.highlighted = index
    await pilot.press("enter")
    await wait_for(pilot, lambda: app.corpus.name == name, what=f"corpus {name}")


TAB_KEYS = {"f2": "corpus", "f3": "tokenizer", "f4": "train", "f5": "generate"}


async def goto(pilot, key: str) -> None:
    """Go to a tab through its key binding and wait until it is laid out."""
    tab = TAB_KEYS[key]
    await pilot.app.run_action(f"show_tab('{tab}')")
    pane = pilot.app.query_one(f"#{tab}-view")
    first = pane.query_one(pane.FIRST_FOCUS)
    await wait_for(pilot, lambda: pane.region.area > 0, what=f"tab {tab}")
    await wait_for(pilot, lambda: pilot.app.focused is first, what=f"focus in {tab}")


async def click(pilot, selector: str, until=None) -> None:
    """Press a button (as a click would), then wait for ``until()`` if given.

    Pilot's click and press wait until the whole process is idle, which takes a
    second or more while a model trains in the worker thread; so while training,
    tests press buttons this way and wait for the effect they expect.
    """
    button = pilot.app.query_one(selector)
    await wait_for(pilot, lambda: button.region.area > 0, what=f"{selector} shown")
    button.press()
    if until is None:
        await pilot.pause()
    else:
        await wait_for(pilot, until, what=f"the effect of {selector}")


async def train_tokenizer(pilot, kind: str = "char") -> None:
    app = pilot.app
    await goto(pilot, "f3")
    app.query_one("#tok-kind").value = kind
    await click(pilot, "#tok-train")
    await wait_for(pilot, lambda: app.tokenizer is not None, what="the tokenizer")


async def send_key(pilot, key: str, char: str | None = None) -> None:
    """A keypress delivered as the terminal driver delivers it (see ``click``)."""
    pilot.app._driver.send_message(events.Key(key, char))
    await asyncio.sleep(0.05)


async def fill(pilot, values: dict[str, str]) -> None:
    for key, value in values.items():
        pilot.app.query_one(f"#{key}").value = value
    await pilot.pause()


async def start_training(pilot, values: dict[str, str]) -> None:
    await goto(pilot, "f4")
    await fill(pilot, values)
    train = pilot.app.query_one("#train-view")
    train.control = None
    await click(pilot, "#start", until=lambda: train.control or train.error_shown)
    assert train.control is not None, text_of(pilot.app, "#train-error")


async def test_whole_path_then_settings_restore_it(tui_env: Path) -> None:
    app = ToyTUI()
    async with app.run_test(size=SIZE) as pilot:
        await choose_corpus(pilot, "tiny")
        assert "the kettle hums a copper tune" in text_of(app, "#corpus-preview")
        bundled = resolve_corpus(DEFAULT_CORPUS).stat().st_size
        listed = app.query_one("#corpus-list").get_option(DEFAULT_CORPUS).prompt
        assert f"{bundled / 1000:.1f} KB" in str(listed)  # the CLI's 1000-based KB
        stats = text_of(app, "#corpus-stats")
        assert f"lines: {TINY.count(chr(10))}" in stats
        assert f"characters: {len(TINY)}" in stats

        await train_tokenizer(pilot, "char")
        assert app.tokenizer.vocab_size >= len(set(TINY))
        assert f"vocab size {app.tokenizer.vocab_size}" in text_of(app, "#tok-summary")

        await goto(pilot, "f4")
        assert app.query_one("#resume").value is False  # a new run unless asked
        await start_training(pilot, TINY_MODEL)
        train = app.query_one("#train-view")
        await wait_for(pilot, lambda: not train.running, what="training to end")
        assert "completed at step 6" in text_of(app, "#train-figures")
        assert (tui_env / "checkpoints" / "toytui" / "model.safetensors").is_file()
        plot = app.query_one(LossPlot)
        assert [s for s, _ in plot.train_points] == [1, 2, 3, 4, 5, 6]
        assert [s for s, _ in plot.val_points] == [3, 6]
        assert app.checkpoint == Path("checkpoints/toytui")

        # resume the saved run for two more steps
        app.query_one("#resume").value = True
        await fill(pilot, {"max_steps": "8", "eval_every": "0"})
        # two steps can finish between two looks at train.running: wait for the end
        await click(pilot, "#start")
        done = "completed at step 8"
        await wait_for(pilot, lambda: done in text_of(app, "#train-figures"))
        await wait_for(pilot, lambda: not train.running, what="the resumed run")
        assert [s for s, _ in plot.train_points] == [7, 8]
        app.query_one("#resume").value = False

        await goto(pilot, "f5")  # waits until the prompt, first on the tab, has focus
        gen = app.query_one("#generate-view")
        assert not app.query_one("#prompt").compact  # a bordered, visible box
        await send_key(pilot, "x", "x")  # typing lands in the prompt
        await wait_for(pilot, lambda: app.query_one("#prompt").value == "x")
        outputs = []
        for _ in range(2):  # regenerate with the same seed: the same text
            await fill(
                pilot, {"prompt": "the ", "gen-max_tokens": "40", "gen-seed": "7"}
            )
            await click(pilot, "#gen-start")
            await wait_for(pilot, lambda: not gen.running, what="the text")
            await pilot.pause()
            outputs.append(text_of(app, "#gen-output"))
        assert outputs[0].startswith("the ") and len(outputs[0]) > len("the ")
        assert outputs[0] == outputs[1] == gen.output
        assert "Done" in text_of(app, "#gen-message")
        # the default save path lies in the checkpoint, not the current folder
        assert app.query_one("#save-path").value == str(
            Path("checkpoints", "toytui", "generated.txt")
        )
        await click(pilot, "#gen-save")
        saved = tui_env / "checkpoints" / "toytui" / "generated.txt"
        assert saved.read_text(encoding="utf-8") == outputs[0]
        assert not (tui_env / "generated.txt").exists()
        await fill(pilot, {"save-path": "out.txt"})
        await click(pilot, "#gen-save")
        assert (tui_env / "out.txt").read_text(encoding="utf-8") == outputs[0]
    assert (tui_env / "config" / "toytui.json").is_file()

    again = ToyTUI()  # the next start remembers corpus, tokenizer and checkpoint
    async with again.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: again.tokenizer is not None, what="restore")
        assert again.corpus.name == "tiny"
        assert again.tokenizer.to_json_str() == app.tokenizer.to_json_str()
        assert again.checkpoint == Path("checkpoints/toytui")
        assert again.query_one("#gen-ckpt").value == "checkpoints/toytui"


async def test_error_paths_bad_sizes_cuda_empty_corpus(tui_env: Path) -> None:
    (tui_env / "empty.txt").write_text("", encoding="utf-8")
    app = ToyTUI()
    async with app.run_test(size=SIZE) as pilot:
        await choose_corpus(pilot, "tiny")
        await fill(pilot, {"corpus-path": "empty.txt"})
        await click(pilot, "#corpus-use")
        message = app.query_one("#corpus-message")
        await wait_for(pilot, lambda: "empty" in str(message.content), what="message")
        assert message.has_class("error")
        assert app.corpus.name == "tiny"

        await train_tokenizer(pilot)
        await goto(pilot, "f4")
        train = app.query_one("#train-view")
        await fill(
            pilot, {"n_head": "4", "d_model": "30", "lr": "fast", "batch_size": "0"}
        )
        errors = text_of(app, "#form-errors")
        assert "heads: 4 does not divide width 30" in errors
        assert "learning rate: 'fast' is not a number" in errors
        assert "batch size: must be at least 1, got 0" in errors
        assert app.query_one("#lr").has_class("-invalid")
        await click(pilot, "#start", until=lambda: train.error_shown)
        assert not train.running and train.control is None
        assert "does not divide" in text_of(app, "#train-error")
        assert app.query_one("#train-error").display

        # what Python's float()/int() accept is accepted: 3e-4, 1e+1
        await fill(pilot, {"n_head": "2", "d_model": "16", "lr": "3e-4"})
        await fill(pilot, {"batch_size": "4", "max_steps": "1e+1"})
        assert text_of(app, "#form-errors") == ""
        assert train.build_spec().max_steps == 10
        assert train.build_spec().lr == 3e-4

        if not torch.cuda.is_available():
            device = app.query_one("#device")
            assert [value for _, value in device._options if value] == ["cpu"]
            device.set_options([("CPU", "cpu"), ("cuda:0", "cuda:0")])  # a stale entry
            device.value = "cuda:0"
            await click(
                pilot, "#start", until=lambda: "CUDA" in text_of(app, "#train-error")
            )
            assert not train.running and train.control is None
            assert "cuda" in text_of(app, "#train-error").lower()


async def test_training_controls_latency_failure_and_reset(tui_env: Path) -> None:
    app = ToyTUI()
    async with app.run_test(size=SIZE) as pilot:
        await choose_corpus(pilot, "tiny")
        await train_tokenizer(pilot)
        train = app.query_one("#train-view")

        # a failure inside the worker: the error panel shows the cause
        await start_training(pilot, {**TINY_MODEL, "context": "512"})
        await wait_for(pilot, lambda: not train.running, what="the failure")
        panel = text_of(app, "#train-error")
        assert panel.startswith("Training failed: corpus 'tiny' has"), panel
        assert "it needs at least" in panel

        # a long run: keypresses on another tab are answered quickly meanwhile
        long_run = {**TINY_MODEL, "d_model": "32", "context": "32"}
        await start_training(
            pilot, {**long_run, "max_steps": "5000", "eval_every": "0"}
        )
        assert not app.query_one("#train-error").display  # the new run cleared it
        await wait_for(pilot, lambda: train.last is not None, what="first steps")
        median_ms, first = await keypress_latency(pilot), train.last.step
        print(f"keypress latency during training: median {median_ms:.1f} ms")
        assert median_ms < 100
        await wait_for(pilot, lambda: train.last.step > first, what="more steps")
        assert len(app.query_one(LossPlot).train_points) >= train.last.step - 1

        await goto(pilot, "f4")
        await click(pilot, "#pause", until=lambda: train.paused)
        await asyncio.sleep(0.5)  # the step in flight finishes and is reported
        paused_at = train.last.step
        await asyncio.sleep(0.5)
        assert train.last.step == paused_at and "paused" in text_of(app, "#status")
        await click(pilot, "#pause", until=lambda: not train.paused)
        await wait_for(pilot, lambda: train.last.step > paused_at, what="resumed steps")

        t0 = time.monotonic()
        await click(pilot, "#stop", until=lambda: not train.running)
        assert time.monotonic() - t0 < 10
        assert "stopped at step" in text_of(app, "#train-figures")
        assert train.last.step < 5000
        assert (tui_env / "checkpoints" / "toytui" / "model.safetensors").is_file()

        # a new run starts a new plot
        await fill(
            pilot, {"max_steps": "3", "eval_every": "0", "out_dir": "checkpoints/b"}
        )
        await click(pilot, "#start", until=lambda: train.running)
        assert len(app.query_one(LossPlot).train_points) <= 3
        await wait_for(pilot, lambda: not train.running, what="second run")
        assert [s for s, _ in app.query_one(LossPlot).train_points] == [1, 2, 3]


async def keypress_latency(pilot, n: int = 15) -> float:
    """Median milliseconds from a keypress to the Prompt field holding it.

    The key goes in the way a terminal's keys do (the driver's send_message), not
    through ``pilot.press``: that one also waits until the whole process is idle,
    which never happens while a model trains in the worker thread.
    """
    await goto(pilot, "f5")
    prompt = pilot.app.query_one("#prompt")
    prompt.focus()
    await asyncio.sleep(0.1)
    latencies = []
    for i in range(n):
        key = events.Key("a", "a")
        t0 = time.perf_counter()
        pilot.app._driver.send_message(key)
        while len(prompt.value) < i + 1:
            assert time.perf_counter() - t0 < 10, "the key never arrived"
            await asyncio.sleep(0.001)
        latencies.append(time.perf_counter() - t0)
        await asyncio.sleep(0.05)
    return statistics.median(latencies) * 1000


def asking(app) -> bool:
    """The quit question is on screen and ready for keys."""
    return isinstance(app.screen, ConfirmScreen) and app.focused is not None


async def test_quit_during_training_asks_then_stops_and_keeps_checkpoint(
    tui_env: Path,
) -> None:
    app = ToyTUI()
    async with app.run_test(size=SIZE) as pilot:
        await choose_corpus(pilot, "tiny")
        await train_tokenizer(pilot)
        await start_training(
            pilot, {**TINY_MODEL, "max_steps": "5000", "eval_every": "0"}
        )
        train = app.query_one("#train-view")
        await wait_for(pilot, lambda: train.last is not None, what="first steps")

        await send_key(pilot, "ctrl+q")
        await wait_for(pilot, lambda: asking(app), what="the question")
        await send_key(pilot, "n", "n")
        await asyncio.sleep(0.3)
        assert train.running and app.is_running

        await send_key(pilot, "ctrl+q")
        await wait_for(pilot, lambda: asking(app), what="the question")
        await send_key(pilot, "y", "y")
        await wait_for(pilot, lambda: not app.is_running, what="exit")
    # the training work ended before the app did (the pool thread itself is asyncio's)
    assert train.finished.is_set() and train.control.stop_requested
    assert (tui_env / "checkpoints" / "toytui" / "model.safetensors").is_file()


async def test_broken_settings_file_gives_defaults(tui_env: Path) -> None:
    (tui_env / "config").mkdir()
    (tui_env / "config" / "toytui.json").write_text("{not json", encoding="utf-8")
    assert Settings.load() == Settings()


async def test_help_theme_and_command_palette(tui_env: Path) -> None:
    app = ToyTUI()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")  # real key presses here: nothing is training
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("f4")
        assert app.query_one("#tabs").active == "train"

        assert app.theme == "textual-dark"
        await pilot.press("ctrl+t")
        assert app.theme == "textual-light"
        assert Settings.load().theme == "textual-light"

        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        for title in ("Go to Corpus", "Go to Train", "Go to Generate", "Keys"):
            assert title in commands
        commands["Go to Generate"].callback()
        await wait_for(pilot, lambda: app.query_one("#tabs").active == "generate")
        commands["Toggle dark/light"].callback()
        assert app.theme == "textual-dark"


async def test_fits_an_80x24_terminal(tui_env: Path) -> None:
    app = ToyTUI()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.corpus is not None, what="the first corpus")
        screen = app.screen.region
        for key, widget in [
            ("f2", "#corpus-use"),
            ("f3", "#tok-train"),
            ("f4", "#start"),
            ("f5", "#gen-start"),
        ]:
            await goto(pilot, key)
            region = app.query_one(widget).region
            assert screen.contains_region(region), (widget, region)
        assert screen.contains_region(app.query_one("#status").region)


def write_classifier(folder: Path) -> torch.nn.Module:
    """A small untrained CNN checkpoint with three labels, as training would save it."""
    from toytorch.models import ConvClassifier, ConvConfig, config_to_dict
    from toytorch.training import save_checkpoint

    torch.manual_seed(0)
    config = ConvConfig(num_classes=3, image_size=8, channels=[4], hidden=[8])
    model = ConvClassifier(config).eval()
    task = {
        "kind": "classify", "data": "fixture", "label_names": ["cat", "dog", "owl"],
        "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "image_size": 8,
        "in_channels": 3, "augment": False,
    }  # fmt: skip
    meta = {"step": 0, "model": config_to_dict(config), "training": {}, "task": task}
    save_checkpoint(folder, model, meta, {"step": 0, "train_loss": [], "evals": []})
    return model


async def test_classify_an_image_file(tui_env: Path) -> None:
    from PIL import Image

    model = write_classifier(tui_env / "checkpoints" / "cnn")
    gradient = bytes(range(0, 256, 4))[:64]
    rgb = bytes(v for i in range(64) for v in (gradient[i], 255 - gradient[i], 128))
    Image.frombytes("RGB", (8, 8), rgb).save(tui_env / "bird.png")

    # the reference: the same model on the same normalised pixels, in torch
    x = torch.tensor(list(rgb), dtype=torch.float32).view(8, 8, 3).permute(2, 0, 1)
    with torch.no_grad():
        ref = torch.softmax(model(((x / 255 - 0.5) / 0.25)[None]), dim=-1)[0]
    order = ref.argsort(descending=True).tolist()

    app = ToyTUI()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.app.run_action("show_tab('classify')")
        await pilot.pause()
        select = app.query_one("#cls-ckpt")
        await wait_for(
            pilot,
            lambda: select.value == "checkpoints/cnn" or len(select._options) > 1,
            what="the classifier",
        )
        select.value = "checkpoints/cnn"
        await fill(pilot, {"cls-image": "bird.png"})
        await click(pilot, "#cls-go")
        top = app.query_one("#cls-top")
        await wait_for(pilot, lambda: "%" in str(top.content), what="the classes")
        lines = str(top.content).splitlines()[:3]
        names = ["cat", "dog", "owl"]
        assert [line.split()[0] for line in lines] == [names[i] for i in order]
        for line, i in zip(lines, order, strict=True):
            assert line.endswith(f"{ref[i].item():6.1%}")
        assert "▀" in str(app.query_one("#cls-picture").content)


async def test_bpe_check_against_tokenizers(tui_env: Path) -> None:
    import tokenizers as hf
    from tokenizers import decoders, models, pre_tokenizers, trainers

    # the reference merges, computed here with Hugging Face tokenizers
    ref = hf.Tokenizer(models.BPE())
    ref.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    ref.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(vocab_size=300, initial_alphabet=alphabet)
    ref.train_from_iterator([TINY], trainer)

    app = ToyTUI()
    async with app.run_test(size=SIZE) as pilot:
        await choose_corpus(pilot, "tiny")
        await goto(pilot, "f3")
        app.query_one("#tok-kind").value = "bpe"
        await fill(pilot, {"tok-vocab": "300"})
        await click(pilot, "#tok-train")
        await wait_for(pilot, lambda: app.tokenizer is not None, what="the BPE")
        assert app.tokenizer.encode(TINY) == ref.encode(TINY).ids

        await click(pilot, "#tok-check")
        report = app.query_one("#tok-bpe")
        await wait_for(
            pilot, lambda: "same merges" in str(report.content), what="check"
        )
        assert "same vocabulary: yes   same merges: yes" in str(report.content)
