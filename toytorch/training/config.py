"""The training configuration: every knob of the loop, saved with each checkpoint."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any


class ConfigError(ValueError):
    """A TrainConfig field out of range; ``name``, ``rule`` and ``value`` let a front
    end name its own option (``--lr must be > 0, got -1``)."""

    def __init__(self, name: str, rule: str, value: Any) -> None:
        self.name, self.rule, self.value = name, rule, value
        super().__init__(f"{name} must be {rule}, got {value!r}")


@dataclass
class TrainConfig:
    """Hyper-parameters and settings of one training run.

    The defaults are nanoGPT's small character-level setting: AdamW with betas
    (0.9, 0.99) (a larger beta2 than the usual 0.95 suits the small batches), weight
    decay 0.1 on 2-D weights only (matrices and embeddings; biases and LayerNorm gains
    are not decayed), a linear warm-up to ``lr`` then a cosine decay to ``min_lr``
    reached at the last step, and gradient-norm clipping at 1.0.

    Args:
        max_steps: optimizer steps to run in total (a resumed run counts the steps it
            already did). Default: 2000.
        epochs: when set, replaces ``max_steps`` by
            ``epochs * task.steps_per_epoch()``.
        batch_size: windows (or samples) per step. Default: 12.
        lr: peak learning rate. Default: 1e-3.
        min_lr: floor of the cosine decay. Default: 1e-4.
        warmup: linear warm-up steps. Default: 100.
        weight_decay: AdamW decoupled weight decay on 2-D weights. Default: 0.1.
        betas: AdamW ``(beta1, beta2)``. Default: (0.9, 0.99).
        grad_clip: clip the global gradient norm to this; 0 disables. Default: 1.0.
        eval_every: evaluate (and save a checkpoint) every this many steps, and at the
            end; 0 evaluates only at the end. Default: 250.
        eval_batches: the size of the fixed evaluation set, in batches. Default: 20.
        val_fraction: the last share of the data kept for validation. Default: 0.1.
        log_every: print a metrics line every this many steps; 0 only at evaluations.
        seed: seeds the model's initialisation (done by the caller), data order and
            dropout. Default: 1337.
        device: "auto" (CUDA when torch sees one), "cpu", "cuda" or "cuda:N".
        compile: wrap the model in ``torch.compile``. Default: False.
        out_dir: checkpoint folder; None trains without saving.
        keep_best: also keep the checkpoint with the best primary metric of the task in
            the sibling folder ``<out_dir>-best``. Default: False.
    """

    max_steps: int = 2000
    epochs: int | None = None
    batch_size: int = 12
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup: int = 100
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0
    eval_every: int = 250
    eval_batches: int = 20
    val_fraction: float = 0.1
    log_every: int = 0
    seed: int = 1337
    device: str = "auto"
    compile: bool = False
    out_dir: str | None = None
    keep_best: bool = False

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)
        for name in ("lr", "min_lr", "weight_decay", "grad_clip", "val_fraction"):
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(name, "a finite number", getattr(self, name))
        checks = {
            "max_steps": (self.max_steps >= 1, ">= 1"),
            "batch_size": (self.batch_size >= 1, ">= 1"),
            "lr": (self.lr > 0, "> 0"),
            "min_lr": (0 <= self.min_lr <= self.lr, f"between 0 and lr ({self.lr:g})"),
            "warmup": (self.warmup >= 0, ">= 0"),
            "weight_decay": (self.weight_decay >= 0, ">= 0"),
            "betas": (
                len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
                "two numbers in [0, 1)",
            ),
            "grad_clip": (self.grad_clip >= 0, ">= 0 (0 turns clipping off)"),
            "eval_every": (self.eval_every >= 0, ">= 0"),
            "eval_batches": (self.eval_batches >= 1, ">= 1"),
            "val_fraction": (0 <= self.val_fraction < 1, "in [0, 1)"),
            "log_every": (self.log_every >= 0, ">= 0"),
        }
        if self.epochs is not None:
            checks["epochs"] = (self.epochs >= 1, ">= 1")
        for name, (ok, rule) in checks.items():
            if not ok:
                raise ConfigError(name, rule, getattr(self, name))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (tuples become lists)."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Build from :meth:`to_dict` output, ignoring keys this version lacks."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
