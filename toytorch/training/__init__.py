"""One training loop for every task and front end, and its checkpoints.

- :func:`train` with a :class:`TrainConfig`, a task (:class:`LanguageModelTask` for
  text; see :mod:`toytorch.training.task` for the protocol), an ``on_event`` callback
  and a :class:`TrainControl`.
- :mod:`toytorch.training.checkpoint`: ``save_checkpoint``, ``load_checkpoint``,
  ``list_checkpoints``.
"""

from toytorch.training.checkpoint import (
    Checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from toytorch.training.config import TrainConfig
from toytorch.training.device import resolve_device, to_device
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
from toytorch.training.lm_task import LanguageModelTask, text_task
from toytorch.training.loop import (
    NonFiniteLossError,
    TrainResult,
    make_optimizer,
    train,
)
from toytorch.training.task import BaseTask, Task, step_generator

__all__ = [
    "BaseTask",
    "Checkpoint",
    "CheckpointSaved",
    "Evaluated",
    "Event",
    "Failed",
    "Finished",
    "LanguageModelTask",
    "NonFiniteLossError",
    "Started",
    "Step",
    "Task",
    "TrainConfig",
    "TrainControl",
    "TrainResult",
    "list_checkpoints",
    "load_checkpoint",
    "make_optimizer",
    "resolve_device",
    "save_checkpoint",
    "step_generator",
    "text_task",
    "to_device",
    "train",
]
