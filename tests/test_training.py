"""The one training loop, on a tiny regression task with a torch.nn model."""

import threading
import time

import pytest
import torch
from training_helpers import ToyRegression, toy_config, toy_model

from toytorch.errors import ToytorchError
from toytorch.training import (
    CheckpointSaved,
    Evaluated,
    Failed,
    Finished,
    NonFiniteLossError,
    Started,
    Step,
    TrainControl,
    make_optimizer,
    resolve_device,
    train,
)
from toytorch.training import checkpoint as ckpt


def run(config, task=None, control=None, stop_at=None, resume=False, model=None):
    """Train and return (events, result); ``stop_at`` requests a stop at that step."""
    events = []
    control = control or TrainControl()

    def on_event(e):
        events.append(e)
        if stop_at is not None and isinstance(e, Step) and e.step == stop_at:
            control.stop()

    result = train(
        model or toy_model(), task or ToyRegression(), config, on_event, control, resume
    )
    return events, result


def losses(events):
    return [e.loss for e in events if isinstance(e, Step)]


def test_loss_falls_and_events_come_in_order():
    events, result = run(toy_config(max_steps=60, eval_every=20, lr=5e-2))
    assert isinstance(events[0], Started) and isinstance(events[-1], Finished)
    steps = [e.step for e in events if isinstance(e, Step)]
    assert steps == list(range(1, 61))
    assert [e.step for e in events if isinstance(e, Evaluated)] == [20, 40, 60]
    evals = [e.metrics["val_loss"] for e in events if isinstance(e, Evaluated)]
    assert evals[-1] < 0.5 * evals[0]
    assert events[-1].reason == "completed" and result.step == 60
    assert all(e.items_per_s > 0 and e.unit == "samples" for e in events[1:3])


def test_same_seed_same_losses_other_seed_other_losses():
    a = losses(run(toy_config(seed=3))[0])
    b = losses(run(toy_config(seed=3))[0])
    c = losses(run(toy_config(seed=4))[0])
    assert a == b
    assert a != c


def test_resumed_run_repeats_the_uninterrupted_loss_curve(tmp_path):
    straight = losses(run(toy_config(max_steps=20, out_dir=str(tmp_path / "a")))[0])

    cfg = toy_config(max_steps=20, out_dir=str(tmp_path / "b"))
    first, result = run(cfg, stop_at=10)
    assert result.reason == "stopped" and result.step == 10
    second, result = run(cfg, resume=True, model=toy_model(seed=99))
    assert result.step == 20 and result.reason == "completed"
    assert losses(first) + losses(second) == straight  # exactly, dropout included
    history = ckpt.read_metrics(tmp_path / "b")["train_loss"]
    assert [loss for _, loss in history] == straight


def test_stop_between_steps_saves_a_checkpoint(tmp_path):
    events, result = run(toy_config(max_steps=50, out_dir=str(tmp_path)), stop_at=7)
    assert result.reason == "stopped" and result.step == 7
    saved = [e for e in events if isinstance(e, CheckpointSaved)]
    assert saved[-1].step == 7
    assert ckpt.read_config(tmp_path)["step"] == 7
    assert events[-1] == Finished(
        7, "stopped", events[-1].elapsed_s, events[-1].metrics
    )


def test_pause_blocks_until_resume():
    control = TrainControl()
    times = {}

    def on_event(e):
        if isinstance(e, Step):
            times[e.step] = time.perf_counter()
            if e.step == 2:
                control.pause()
                threading.Timer(0.3, control.resume).start()

    train(toy_model(), ToyRegression(), toy_config(max_steps=4), on_event, control)
    assert times[3] - times[2] >= 0.3
    assert sorted(times) == [1, 2, 3, 4]


def test_stop_wakes_a_paused_run():
    control = TrainControl()
    control.pause()
    threading.Timer(0.1, control.stop).start()
    result = train(toy_model(), ToyRegression(), toy_config(), None, control)
    assert result.reason == "stopped" and result.step == 0


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = toy_config(max_steps=20, eval_every=4, out_dir=str(tmp_path / "run"))
    events = []
    with pytest.raises(NonFiniteLossError, match="nan at step 6"):
        train(toy_model(), ToyRegression(nan_at=6), cfg, events.append)
    assert isinstance(events[-1], Failed) and "untouched" in events[-1].message
    assert ckpt.read_config(tmp_path / "run")["step"] == 4
    assert [e.step for e in events if isinstance(e, Step)] == [1, 2, 3, 4, 5]


def test_weight_decay_only_on_2d_weights():
    model = toy_model()
    opt = make_optimizer(model, toy_config(weight_decay=0.1))
    decayed, plain = opt.param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert {p.dim() for p in decayed["params"]} == {2}
    assert {p.dim() for p in plain["params"]} == {1}
    assert len(decayed["params"]) + len(plain["params"]) == len(
        list(model.parameters())
    )
    assert opt.defaults["betas"] == (0.9, 0.99)


def test_learning_rates_follow_torch_warmup_then_cosine():
    cfg = toy_config(max_steps=30, warmup=5, lr=1e-2, min_lr=1e-3)
    got = [e.lr for e in run(cfg)[0] if isinstance(e, Step)]

    # Reference: torch's own schedulers, stepped once per optimizer step.
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=cfg.lr)
    warm = torch.optim.lr_scheduler.LinearLR(opt, 1 / (cfg.warmup + 1), 1.0, cfg.warmup)
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 30 - cfg.warmup, cfg.min_lr)
    sched = torch.optim.lr_scheduler.SequentialLR(opt, [warm, cos], [cfg.warmup])
    want = []
    for _ in range(30):
        want.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert got == pytest.approx(want, rel=1e-9)


def test_epochs_set_the_number_of_steps():
    task = ToyRegression(n=64)
    _, result = run(toy_config(epochs=2, batch_size=8), task=task)
    assert result.step == 2 * 64 // 8


def test_devices():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == (
        "cuda" if torch.cuda.is_available() else "cpu"
    )
    with pytest.raises(ToytorchError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        for name in ("cuda", "cuda:1"):
            with pytest.raises(ToytorchError, match="no CUDA"):
                resolve_device(name)


def test_bad_device_fails_with_a_failed_event():
    if torch.cuda.is_available():
        pytest.skip("a CUDA machine has the device")
    events = []
    with pytest.raises(ToytorchError):
        train(toy_model(), ToyRegression(), toy_config(device="cuda"), events.append)
    assert isinstance(events[-1], Failed)


@pytest.mark.parametrize(
    "field, value", [("max_steps", 0), ("lr", -1.0), ("betas", (0.9, 1.5))]
)
def test_config_checks_its_values(field, value):
    with pytest.raises(ValueError, match=field):
        toy_config(**{field: value})
