"""The one training loop, shared by the CLI, the Textual app and every task.

``train(model, task, config, on_event, control)`` runs AdamW steps on the batches the
task gives, with a cosine learning-rate schedule after a linear warm-up, gradient
clipping, an evaluation every ``config.eval_every`` steps on the task's fixed set, a
checkpoint after each evaluation and at the end, and events for the front end. It
checks ``control`` between steps, so a stop or pause never cuts a step in half.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from toytorch.errors import ToytorchError
from toytorch.func import cosine_lr
from toytorch.training import checkpoint as ckpt
from toytorch.training import distributed
from toytorch.training.config import TrainConfig
from toytorch.training.device import to_device
from toytorch.training.events import (
    CheckpointSaved,
    Evaluated,
    Event,
    Failed,
    Finished,
    Started,
    Step,
    TrainControl,
)
from toytorch.training.task import Task


class NonFiniteLossError(ToytorchError):
    """The loss became NaN or infinite; the last good checkpoint was left as it was."""


@dataclass
class TrainResult:
    """How a run ended: the last step, why, the last evaluation and the histories."""

    step: int
    reason: str
    metrics: dict[str, float]
    history: dict[str, Any]
    elapsed_s: float
    checkpoint: Path | None = None


@dataclass
class _Clock:
    """Time spent in optimizer steps only (not evaluation, saving or pauses)."""

    step_s: float = 0.0
    items: int = 0
    steps: int = 0
    started: float = field(default_factory=time.perf_counter)

    def rate(self) -> float:
        return self.items / self.step_s if self.step_s > 0 else 0.0

    def eta(self, remaining: int) -> float:
        return remaining * self.step_s / self.steps if self.steps else math.inf


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on 2-D weights (matrices, embeddings) only.

    Biases and LayerNorm gains and shifts (1-D) are not decayed: pulling them toward
    zero only fights the normalisation (the nanoGPT / GPT-2 recipe). A tied weight is
    one parameter, so it is counted once.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)


def lr_at(step: int, config: TrainConfig, total_steps: int) -> float:
    """Learning rate of step ``step`` (0-based): warm-up, cosine decay, floor."""
    return cosine_lr(step, config.lr, config.min_lr, config.warmup, total_steps)


def train(
    model: nn.Module,
    task: Task,
    config: TrainConfig,
    on_event: Callable[[Event], None] | None = None,
    control: TrainControl | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train ``model`` on ``task``; see the module docstring and ``TrainConfig``.

    Args:
        model: the model, on any device (it is moved to ``config.device``).
        task: supplies batches, the loss and the evaluation (see ``training.task``).
        config: the hyper-parameters; ``config.out_dir`` is the checkpoint folder.
        on_event: called with each event, on this thread.
        control: stop / pause from another thread or a signal handler.
        resume: continue the run saved in ``config.out_dir`` (weights, optimizer, RNG,
            step); ``model`` must have the architecture saved there.

    Raises:
        NonFiniteLossError: the loss or a validation metric was not finite.
        ToytorchError: bad device, unusable checkpoint to resume, data too small.
    """
    run = _Run(model, task, config, on_event or (lambda event: None), control)
    ended = False
    try:
        run.set_up(resume)
        result = run.loop()
        ended = True  # every rank got here: they can meet once more in close()
        return result
    except BaseException as e:
        run.emit(Failed(run.step, str(e) or type(e).__name__))
        raise
    finally:
        run.net = None  # DDP's reducer holds the process group (see close())
        run.dist.close(all_ranks=ended)  # leave the group set_up joined, if any


class _Run:
    """The state of one call to :func:`train`, split into its phases."""

    def __init__(self, model, task, config, on_event, control):
        self.model, self.task, self.config = model, task, config
        self.emit = on_event
        self.control = control or TrainControl()
        self.step = 0
        self.history: dict[str, Any] = {"train_loss": [], "evals": []}
        self.best: float | None = None
        self.out = Path(config.out_dir) if config.out_dir else None
        self.dist = distributed.Distributed()  # one process until set_up says more

    # ------------------------------------------------------------------- set-up

    def set_up(self, resume: bool) -> None:
        config = self.config
        self.dist, self.device = distributed.setup(config)  # torchrun's env, if any
        self.model.to(self.device)
        torch.manual_seed(config.seed)  # dropout; resume restores the saved state
        random.seed(config.seed)
        self.task.setup(self.model, config, self.device)
        self.optimizer = make_optimizer(self.model, config)
        self.total = config.max_steps
        if config.epochs is not None:
            self.total = config.epochs * self.task.steps_per_epoch()
        if resume:
            self._resume()
        self.eval_net = torch.compile(self.model) if config.compile else self.model
        self.net = self.dist.wrap(self.eval_net)  # DDP under torchrun; eval skips it
        self.emit(self._started())
        self.dist.shard_eval(self.task)  # after describe(), which shows the whole set

    def _resume(self) -> None:
        if self.out is None:
            raise ToytorchError("resume needs a checkpoint folder (out_dir)")
        ckpt.load_weights(self.out, self.model)
        self.step, task_state = ckpt.restore_training_state(self.out, self.optimizer)
        self.task.load_state_dict(self.dist.shard_task_state(task_state))
        metrics = ckpt.read_metrics(self.out)
        self.history = {k: metrics.get(k, []) for k in ("train_loss", "evals")}
        self.best = metrics.get("best")

    def _started(self) -> Started:
        c = self.config
        n_decay = sum(p.numel() for p in self.optimizer.param_groups[0]["params"])
        n_params = sum(p.numel() for p in self.model.parameters())
        clip = f"clip grad norm {c.grad_clip:g}" if c.grad_clip else "no grad clip"
        decisions = [
            f"device: {self.device}" + (" (torch.compile)" if c.compile else ""),
            f"model: {n_params:,} parameters ({n_decay:,} in 2-D weights)",
            f"optimizer: AdamW betas ({c.betas[0]:g}, {c.betas[1]:g}), weight decay "
            f"{c.weight_decay:g} on 2-D weights only, {clip}",
            f"schedule: lr {c.lr:g}, {c.warmup} warm-up steps, cosine to {c.min_lr:g} "
            f"at step {self.total}"
            + (" (the warm-up outlasts the run)" if c.warmup >= self.total else ""),
            f"steps: {self.total} of batch {c.batch_size}, evaluate every "
            f"{c.eval_every or self.total}, seed {c.seed}",
            *self.task.describe(),
            *self.dist.describe(c.batch_size),
        ]
        if self.step:
            decisions.append(f"resumed at step {self.step} from {self.out}")
        if self.out:
            decisions.append(f"checkpoints: {self.out}")
        return Started(
            self.step, self.total, str(self.device), n_params, self.task.unit, decisions
        )

    # --------------------------------------------------------------------- loop

    def loop(self) -> TrainResult:
        clock, since_eval = _Clock(), []
        metrics: dict[str, float] = {}
        reason = "completed"
        while self.step < self.total:
            self.control.wait_if_paused()
            if self.dist.any(self.control.stop_requested):  # all ranks stop together
                reason = "stopped"
                break

            loss, seconds, items = self._one_step()
            clock.step_s, clock.items, clock.steps = (
                clock.step_s + seconds,
                clock.items + items,
                clock.steps + 1,
            )
            since_eval.append(loss)
            self.emit(self._step_event(loss, clock))

            every = self.config.eval_every
            if (every and self.step % every == 0) or self.step == self.total:
                metrics = self._evaluate_and_save(since_eval)
                since_eval = []

        if since_eval:
            metrics = self._evaluate_and_save(since_eval)  # stopped between evals
        elapsed = time.perf_counter() - clock.started
        self.emit(Finished(self.step, reason, elapsed, metrics))
        return TrainResult(self.step, reason, metrics, self.history, elapsed, self.out)

    def _one_step(self) -> tuple[float, float, int]:
        """Forward, backward, clip, AdamW step; returns (loss, seconds, items)."""
        t0 = time.perf_counter()
        lr = lr_at(self.step, self.config, self.total)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        batch = self.dist.shard(self.task.train_batch(self.step))  # this rank's rows
        batch = to_device(batch, self.device)

        loss = self.task.loss(self.net, batch)
        value = self.dist.mean_loss(loss)  # the global batch's loss on every rank
        if not math.isfinite(value):
            raise NonFiniteLossError(self._diverged("training loss", value))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(
                self.model.parameters(), self.config.grad_clip
            )
        self.optimizer.step()

        self.step += 1
        self.history["train_loss"].append([self.step, value])
        self.lr = lr
        items = self.task.batch_items(batch) * self.dist.world_size
        return value, time.perf_counter() - t0, items

    def _step_event(self, loss: float, clock: _Clock) -> Step:
        return Step(
            self.step,
            self.total,
            loss,
            self.lr,
            clock.rate(),
            clock.eta(self.total - self.step),
            self.task.unit,
        )

    def _diverged(self, what: str, value: float) -> str:
        kept = (
            f"the last good checkpoint in {self.out} is untouched"
            if self.out and ckpt.checkpoint_exists(self.out)
            else "no checkpoint was written"
        )
        return (
            f"{what} became {value} at step {self.step + 1}; stopped, {kept}. "
            "Try a lower --lr or a longer --warmup"
        )

    # ------------------------------------------------------- evaluate and save

    def _evaluate_and_save(self, since_eval: list[float]) -> dict[str, float]:
        self.model.eval()
        with torch.no_grad():
            metrics = self.dist.reduce_metrics(dict(self.task.evaluate(self.eval_net)))
        self.model.train()
        bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
        if bad:
            name, value = next(iter(bad.items()))
            raise NonFiniteLossError(self._diverged(name, value))

        train_loss = sum(since_eval) / len(since_eval) if since_eval else None
        self.history["evals"].append(
            {"step": self.step, "train_loss": train_loss, **metrics}
        )
        self.emit(Evaluated(self.step, metrics, train_loss))
        if self.out:
            self._save(self.out, best=False)
            if self.config.keep_best and self._improved(metrics):
                self._save(self.out.with_name(self.out.name + "-best"), best=True)
        return metrics

    def _improved(self, metrics: dict[str, float]) -> bool:
        value = metrics.get(self.task.primary_metric)
        if value is None:
            return False
        sign = 1 if self.task.higher_is_better else -1
        if self.best is not None and sign * value <= sign * self.best:
            return False
        self.best = value
        return True

    def _save(self, path: Path, best: bool) -> None:
        config = {
            "step": self.step,
            "model": _model_config(self.model),
            "training": self.config.to_dict(),
            "task": self.task.info(),
        }
        metrics = {"step": self.step, "best": self.best, **self.history}
        task_state = self.dist.gather_task_state(self.task.state_dict())
        state = ckpt.training_state(self.optimizer, self.step, task_state)
        if self.dist.is_main:  # one writer; the other ranks wait at the barrier
            ckpt.save_checkpoint(
                path, self.model, config, metrics, self.task.files(), state
            )
        self.dist.barrier()
        self.emit(CheckpointSaved(self.step, str(path), best))


def _model_config(model: nn.Module) -> dict[str, Any] | None:
    """The model's config as saved in config.json (None for a model without one)."""
    config = getattr(ckpt.unwrap(model), "config", None)
    if config is None:
        return None
    from toytorch.models import config_to_dict

    return config_to_dict(config)
