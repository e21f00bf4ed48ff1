"""Unit tests of the form parsing and the training-update throttle (no app needed)."""

from __future__ import annotations

import pytest

from toytui.backend import TrainUpdate
from toytui.screens.train import POST_EVERY_S, _Throttle, validate
from toytui.widgets.fields import FieldError, parse_float, parse_int


@pytest.mark.parametrize(
    ("text", "value"),
    [("12", 12), (" 7 ", 7), ("1_000", 1000), ("1e+1", 10), ("3e2", 300)],
)
def test_int_fields_take_what_python_takes(text: str, value: int) -> None:
    assert parse_int("steps", text) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "steps: '' is not a number"),
        ("ten", "steps: 'ten' is not a number"),
        ("1.5", "steps: '1.5' is not a whole number"),
        ("inf", "steps: 'inf' is not a whole number"),
        ("0", "steps: must be at least 1, got 0"),
        ("-3", "steps: must be at least 1, got -3"),
    ],
)
def test_int_fields_reject_the_rest_with_a_message(text: str, message: str) -> None:
    with pytest.raises(FieldError) as e:
        parse_int("steps", text)
    assert str(e.value) == message and e.value.field == "steps"


def test_float_fields() -> None:
    assert parse_float("lr", "3e-4") == float("3e-4")
    assert parse_float("lr", "1e+1") == 10.0
    for bad in ("nan", "inf", "1e-3x", ""):
        with pytest.raises(FieldError):
            parse_float("lr", bad)
    with pytest.raises(FieldError, match="must be greater than 0, got 0"):
        parse_float("lr", "0", low=0, low_open=True)
    with pytest.raises(FieldError, match="must be at most 1, got 2"):
        parse_float("top-p", "2", high=1)


def test_heads_must_divide_width_only_for_the_transformer() -> None:
    texts = {
        "n_layer": "2", "n_head": "3", "d_model": "64", "context": "32",
        "batch_size": "8", "max_steps": "10", "lr": "1e-3", "dropout": "0",
        "eval_every": "5", "seed": "1",
    }  # fmt: skip
    _, errors = validate("transformer", texts)
    assert errors == {"n_head": "heads: 3 does not divide width 64"}
    values, errors = validate("lstm", texts)
    assert errors == {} and values["d_model"] == 64


def test_throttle_posts_a_few_updates_and_keeps_every_loss(monkeypatch) -> None:
    clock = [0.0]
    monkeypatch.setattr("toytui.screens.train.time.monotonic", lambda: clock[0])
    posted: list[TrainUpdate] = []
    throttle = _Throttle(posted.append)
    for step in range(1, 1001):  # 1000 steps in one simulated second
        clock[0] = step / 1000
        throttle(TrainUpdate("step", step, 1000, loss=1.0 / step))
    throttle(TrainUpdate("finished", 1000))

    steps = [u for u in posted if u.kind == "step"]
    assert len(steps) <= 1 / POST_EVERY_S + 2
    assert [s for u in steps for s, _ in u.losses] == list(range(1, 1001))
    assert posted[-1].kind == "finished" and steps[-1].step == 1000
