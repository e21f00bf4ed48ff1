"""Training on several processes or machines: torch.distributed and DDP for the loop.

The loop (:mod:`toytorch.training.loop`) calls into a :class:`Distributed` object at a
few points; on a single process every call is a no-op, so one code path serves both.
Under ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``) :func:`setup` joins the process group: gloo on
the CPU, nccl on CUDA with one GPU per process (``cuda:LOCAL_RANK``).

How a step stays the single-process step:

- Every rank draws the same global batch from the task (a pure function of
  ``(seed, step)``) and keeps its contiguous slice of rows: ``batch_size / world_size``
  each, so the global batch is the one the user asked for.
- The loss is a mean over the batch and every slice has the same number of rows, so
  the gradient DistributedDataParallel averages over ranks is the gradient of the
  global batch; clipping and AdamW then see the same numbers on every rank.
- The reported training loss is the mean of the ranks' losses (the global batch's
  loss), and a stop request counts when any rank has one, so all ranks stop together.

Evaluation: a task that has ``shard_eval(rank, world_size) -> weight`` keeps its share
of the fixed evaluation set; the metrics are then a weighted mean over ranks. A task
without it evaluates the whole set on every rank (the same numbers everywhere).

Checkpoints: only rank 0 writes them. A task's state (the LSTM's carried ``(h, c)``)
is gathered from all ranks first and sliced again on resume, so a checkpoint is the
same whatever the number of processes and any number can resume it.

Known shortcomings, plainly:

- Every rank seeds torch with the same seed, so dropout draws the same masks on each
  rank's slice; a single-process run with dropout draws other masks, so runs with
  dropout > 0 agree in distribution only, not number for number.
- Task-state tensors are gathered and sliced along dim 1, the batch dimension of a
  recurrent state ``(n_layer, B, H)``; a task whose state has its batch elsewhere
  would need its own rule here.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from toytorch.errors import ToytorchError
from toytorch.training.config import TrainConfig
from toytorch.training.device import resolve_device

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
STATE_BATCH_DIM = 1  # the batch dimension of a recurrent state (n_layer, B, H)


def world_from_env() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` as torchrun sets them; ``(0, 1, 0)`` alone."""
    try:
        rank = int(os.environ.get("RANK", "0"))
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        shown = {k: os.environ.get(k) for k in ENV_VARS[:3]}
        raise ToytorchError(
            f"bad torchrun environment, not integers: {shown}"
        ) from None
    if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
        raise ToytorchError(
            f"bad torchrun environment: RANK={rank} WORLD_SIZE={world_size} "
            f"LOCAL_RANK={local_rank}"
        )
    return rank, world_size, local_rank


def is_main_process() -> bool:
    """True on rank 0 (and on a single process): the one that prints and saves."""
    return world_from_env()[0] == 0


def setup(config: TrainConfig) -> tuple[Distributed, torch.device]:
    """Join the process group torchrun describes (if any); return it and the device.

    On a single process this is ``(Distributed(), resolve_device(config.device))``.
    """
    rank, world_size, local_rank = world_from_env()
    if world_size == 1:
        return Distributed(), resolve_device(config.device)

    if config.batch_size % world_size:
        raise ToytorchError(
            f"batch size {config.batch_size} does not split over {world_size} "
            f"processes: use a multiple of {world_size}"
        )
    missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(k)]
    if missing:
        raise ToytorchError(
            f"WORLD_SIZE is {world_size} but {', '.join(missing)} is not set: start "
            "the run with torchrun"
        )
    device = process_device(config.device, local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    owns_group = _init_group(backend, device, rank, world_size)
    return Distributed(rank, world_size, local_rank, backend, owns_group), device


def process_device(name: str, local_rank: int) -> torch.device:
    """The device of one process: the CPU, or the GPU ``cuda:LOCAL_RANK``."""
    device = resolve_device(name)  # checks the name; "auto" becomes cuda or cpu
    if device.type != "cuda":
        return device
    if device.index is not None:
        raise ToytorchError(
            f"--device {name} under torchrun: each process takes cuda:LOCAL_RANK, so "
            "use --device cuda or auto (CUDA_VISIBLE_DEVICES picks the GPUs)"
        )
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise ToytorchError(
            f"process with LOCAL_RANK {local_rank} has no GPU: torch sees {count}; "
            f"start at most {count} processes per machine"
        )
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def _init_group(backend: str, device: torch.device, rank: int, world: int) -> bool:
    """Join the default group unless the caller already did; True if we joined."""
    import torch.distributed as dist

    if not dist.is_available():
        raise ToytorchError("this torch build has no torch.distributed")
    if dist.is_initialized():
        return False
    if backend == "gloo" and not dist.is_gloo_available():
        raise ToytorchError("this torch build has no gloo backend for CPU training")
    extra = {"device_id": device} if backend == "nccl" else {}
    dist.init_process_group(
        backend, init_method="env://", rank=rank, world_size=world, **extra
    )
    return True


@dataclass
class Distributed:
    """Where this process stands in the run, and the collective steps of the loop.

    The default, ``Distributed()``, is a single process: every method then returns its
    input (or does nothing), so the loop calls them unconditionally.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    owns_group: bool = False
    eval_weight: float | None = None  # set by shard_eval when the task shards

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def describe(self, batch_size: int) -> list[str]:
        """The start-up line about the processes (none on a single process)."""
        if not self.enabled:
            return []
        return [
            f"distributed: {self.world_size} processes ({self.backend}), printed by "
            f"rank {self.rank}; each takes {batch_size // self.world_size} rows of "
            f"every global batch of {batch_size}"
        ]

    # ------------------------------------------------------------------ the model

    def wrap(self, model: nn.Module) -> nn.Module:
        """``model`` in DistributedDataParallel (which averages gradients), or itself.

        DDP copies rank 0's weights to every rank when it is built, so wrap after the
        weights are final (after a resume).
        """
        if not self.enabled:
            return model
        device = next(model.parameters()).device
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    # ---------------------------------------------------------------- each step

    def shard(self, batch: Any) -> Any:
        """This rank's contiguous slice of rows of every tensor in a global batch."""
        if not self.enabled:
            return batch
        return _map_tensors(batch, self._rows)

    def _rows(self, t: torch.Tensor) -> torch.Tensor:
        # Equal slices keep the mean of the ranks' mean losses the global batch's.
        if t.shape[0] % self.world_size:
            raise ToytorchError(
                f"a batch of {t.shape[0]} rows does not split over {self.world_size} "
                "processes"
            )
        b = t.shape[0] // self.world_size
        return t[self.rank * b : (self.rank + 1) * b]

    def mean_loss(self, loss: torch.Tensor) -> float:
        """The global batch's loss: the mean of the ranks' (equal-sized) slices."""
        if not self.enabled:
            return loss.item()
        import torch.distributed as dist

        total = loss.detach().float().reshape(1).clone()
        dist.all_reduce(total)  # sum: gloo has no average
        return total.item() / self.world_size

    def any(self, flag: bool) -> bool:
        """True when ``flag`` is True on any rank (a stop must stop every rank)."""
        if not self.enabled:
            return flag
        import torch.distributed as dist

        t = torch.tensor([float(flag)], device=self._comm_device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    # --------------------------------------------------------------- evaluation

    def shard_eval(self, task: Any) -> None:
        """Let the task keep this rank's share of its evaluation set, if it can."""
        if self.enabled and hasattr(task, "shard_eval"):
            self.eval_weight = float(task.shard_eval(self.rank, self.world_size))

    def reduce_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        """Metrics of the whole evaluation set from the ranks' shares.

        Each metric is the weighted mean over the ranks that report it, the weights
        being what the task's ``shard_eval`` returned. A perplexity is the exponential
        of a mean loss, so it is recomputed from the reduced ``val_loss`` rather than
        averaged (a mean of exponentials is not the exponential of the mean).
        """
        if not self.enabled or self.eval_weight is None:
            return metrics
        import math

        import torch.distributed as dist

        parts: list[Any] = [None] * self.world_size
        dist.all_gather_object(parts, (metrics, self.eval_weight))
        reduced = {}
        for key in dict.fromkeys(k for m, _ in parts for k in m):
            pairs = [(m[key], w) for m, w in parts if key in m and w > 0]
            weight = sum(w for _, w in pairs)
            if weight > 0:
                reduced[key] = sum(v * w for v, w in pairs) / weight
        if "perplexity" in reduced and "val_loss" in reduced:
            loss = reduced["val_loss"]
            reduced["perplexity"] = math.exp(loss) if loss < 700 else math.inf
        return reduced

    # -------------------------------------------------------------- checkpoints

    def gather_task_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """The task state of all ranks, tensors joined along ``STATE_BATCH_DIM``."""
        if not self.enabled:
            return state
        import torch.distributed as dist

        def gather(t: torch.Tensor) -> torch.Tensor:
            if t.dim() <= STATE_BATCH_DIM:
                return t  # no batch dimension: the same on every rank
            parts = [torch.empty_like(t) for _ in range(self.world_size)]
            dist.all_gather(parts, t.contiguous())
            return torch.cat(parts, dim=STATE_BATCH_DIM)

        return _map_tensors(state, gather)

    def shard_task_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """This rank's slice of a task state read from a checkpoint."""
        if not self.enabled:
            return state

        def rows(t: torch.Tensor) -> torch.Tensor:
            if t.dim() <= STATE_BATCH_DIM:
                return t
            return t.tensor_split(self.world_size, dim=STATE_BATCH_DIM)[self.rank]

        return _map_tensors(state, rows)

    def barrier(self) -> None:
        """Wait for every rank (e.g. until rank 0 has finished writing a checkpoint)."""
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def close(self, all_ranks: bool = True) -> None:
        """Leave the process group, if :func:`setup` joined it.

        Subtle: when the last reference to a gloo group goes (say, a DDP wrapper
        collected later), the group's destructor runs holding the GIL and waits for
        gloo's worker threads, and a worker that is freeing a finished job's tensors
        may be waiting for the GIL: the run hangs at its very end. So, when every
        rank ended normally (``all_ranks``), they meet at a barrier first (it waits
        for every earlier job); the GIL is then let go for a moment, for workers
        still tidying up; the wrappers ``train`` dropped are collected; and only
        then is the group destroyed. After a failure on one rank a barrier could
        wait forever for the others, so it is skipped.
        """
        if self.owns_group:
            import torch.distributed as dist

            if dist.is_initialized():
                if all_ranks:
                    dist.barrier()
                time.sleep(0.05)  # the GIL, free for gloo's workers
                gc.collect()  # DDP wrappers sit in reference cycles
                dist.destroy_process_group()
            self.owns_group = False

    def _comm_device(self) -> torch.device:
        """nccl reduces CUDA tensors only; gloo takes CPU tensors."""
        if self.backend == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")


def _map_tensors(obj: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """Apply ``fn`` to every tensor in a nested tuple/list/dict; keep other leaves."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, (tuple, list)):
        return type(obj)(_map_tensors(o, fn) for o in obj)
    if isinstance(obj, dict):
        return {k: _map_tensors(v, fn) for k, v in obj.items()}
    return obj
