"""Checkpoints: one folder per run, written atomically, read without unpickling.

A checkpoint folder holds:

- ``model.safetensors``: the weights, keys as the bare model names them (no
  ``_orig_mod.`` from ``torch.compile``, no ``module.`` from DDP); a tied weight is
  stored once.
- ``config.json``: ``{"format", "version", "step", "model": {"arch", ...},
  "training": TrainConfig, "task": {...}}``.
- ``metrics.json``: the step, the training-loss history ``[[step, loss], ...]`` and
  every evaluation ``[{"step", "val_loss", ...}]``.
- ``training_state.safetensors`` + ``training_state.json``: what ``resume`` needs:
  AdamW's moment tensors, the torch (and CUDA) RNG states as uint8 tensors, Python's
  ``random`` state, the task's state (e.g. the LSTM's carried state) and the step.
  The learning-rate schedule is a pure function of the step, so the step is its state.
- any text files the task adds (``tokenizer.json`` for text).

Writing: every file goes into a hidden sibling ``.NAME.tmp-PID``; then the old folder
is renamed to ``.NAME.old``, the new one to ``NAME``, and the old one deleted. A crash
before the second rename leaves ``NAME`` whole, or only ``.NAME.old``, which loading
then reads (and the next save restores). A save replaces only a previous checkpoint
(a folder with toytorch's ``config.json`` and a ``model.safetensors``) or an empty
folder: a file or any other folder at the path is refused (``check_target``). It also
removes ``.NAME.tmp-PID`` folders whose process is gone, and its own on failure. The
swap itself deletes only the ``.NAME.old``/``.NAME.tmp-*`` names toytorch reserves.
Known limit: a user's own file put inside a checkpoint folder goes with the next save.
Loading reads safetensors and JSON only: no
``torch.load``, no pickle. Every tensor is loaded to the CPU first, so a checkpoint
written on a GPU loads on a machine without one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from toytorch.errors import ToytorchError

FORMAT = "toytorch-checkpoint"
VERSION = 1
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
STATE_TENSORS = "training_state.safetensors"
STATE_JSON = "training_state.json"
REQUIRED = (MODEL_FILE, CONFIG_FILE, METRICS_FILE)


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside ``torch.compile`` (``_orig_mod``) and DDP (``module``)."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


# ----------------------------------------------------------------------------- writing


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    config: dict[str, Any],
    metrics: dict[str, Any],
    files: dict[str, str] | None = None,
    training_state: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = None,
) -> Path:
    """Write a checkpoint folder atomically and return its path.

    Args:
        path: the folder; its parent is created.
        model: the model (compiled or DDP-wrapped is fine: it is unwrapped).
        config: JSON-ready ``{"model", "training", "task", "step"}``.
        metrics: JSON-ready loss history.
        files: extra text files, name -> content (e.g. ``tokenizer.json``).
        training_state: ``(tensors, json)`` from :func:`training_state`.

    Raises:
        ToytorchError: ``path`` is a file or a folder that is not a checkpoint, or
            the operating system refused a write (the temporary folder is removed).
    """
    final = Path(path)
    if final.name in ("", ".", ".."):
        final = Path(os.path.abspath(final))  # "." has no name to build siblings from
    check_target(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        _clear_stale_tmp(final)
        tmp = _sibling(final, f"tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    except OSError as e:
        raise ToytorchError(f"cannot write checkpoint {final}: {_reason(e)}") from None
    try:
        _write_all(tmp, model, config, metrics, files, training_state)
        _swap_in(tmp, final)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)  # a failed save leaves nothing behind
        if isinstance(e, OSError):
            raise ToytorchError(
                f"cannot write checkpoint {final}: {_reason(e)}"
            ) from None
        raise
    return final


def _write_all(tmp, model, config, metrics, files, training_state) -> None:
    from safetensors.torch import save_file, save_model

    save_model(unwrap(model), str(tmp / MODEL_FILE))
    header = {"format": FORMAT, "version": VERSION, **config}
    _write_text(tmp / CONFIG_FILE, json.dumps(header, indent=2))
    _write_text(tmp / METRICS_FILE, json.dumps(metrics))
    for name, text in (files or {}).items():
        _write_text(tmp / name, text)
    if training_state is not None:
        tensors, state_json = training_state
        save_file(tensors, str(tmp / STATE_TENSORS))
        _write_text(tmp / STATE_JSON, json.dumps(state_json))
    _fsync_all(tmp)


def _reason(e: OSError) -> str:
    return e.strerror or str(e) or type(e).__name__


def is_checkpoint(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder with toytorch's marker files: a
    ``model.safetensors`` and a ``config.json`` whose ``format`` is toytorch's."""
    folder = Path(path)
    if not (folder / MODEL_FILE).is_file() or not (folder / CONFIG_FILE).is_file():
        return False
    try:
        config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(config, dict) and config.get("format") == FORMAT


def check_target(path: str | os.PathLike, option: str = "checkpoint folder") -> bool:
    """Refuse a target a checkpoint must not replace; True when it holds one already.

    A save replaces ``path`` whole, so it may only be missing, an empty folder, or a
    toytorch checkpoint (or have only the ``.old`` twin an interrupted save left). A
    file or any other folder is the user's: a ToytorchError, naming ``option``.
    """
    folder = Path(path)
    if folder.is_dir():
        if is_checkpoint(folder):
            return True
        if any(folder.iterdir()):
            raise ToytorchError(
                f"{folder} exists and is not a toytorch checkpoint; "
                f"choose another {option}"
            )
        return False
    if folder.exists() or folder.is_symlink():
        raise ToytorchError(f"{option} {folder} is a file; choose a folder")
    return is_checkpoint(_sibling(folder, "old"))


def check_writable(path: str | os.PathLike, option: str = "checkpoint folder") -> None:
    """Create the parent of ``path`` and a scratch folder beside it, before any work,
    so an unwritable place fails in one line instead of at the first save."""
    folder = Path(path)
    if folder.name in ("", ".", ".."):
        folder = Path(os.path.abspath(folder))
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        probe = _sibling(folder, f"probe-{os.getpid()}")
        probe.mkdir(exist_ok=True)
        probe.rmdir()
    except OSError as e:
        raise ToytorchError(
            f"{option} {folder} cannot be written: {_reason(e)}"
        ) from None


def _clear_stale_tmp(final: Path) -> None:
    """Remove ``.NAME.tmp-PID`` folders whose process is gone (an earlier crash)."""
    prefix = f".{final.name}.tmp-"
    for p in final.parent.iterdir():
        if not p.name.startswith(prefix) or not p.is_dir():
            continue
        pid = p.name[len(prefix) :]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue  # another process is writing this very checkpoint right now
        shutil.rmtree(p, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists but belongs to someone else
    return True


def _sibling(final: Path, tag: str) -> Path:
    return final.with_name(f".{final.name}.{tag}")


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _fsync_all(folder: Path) -> None:
    for p in folder.iterdir():
        with open(p, "rb") as f:
            os.fsync(f.fileno())


def _swap_in(tmp: Path, final: Path) -> None:
    """Replace ``final`` by ``tmp`` with two renames; see the module docstring."""
    old = _sibling(final, "old")
    if not final.exists() and old.exists():
        os.replace(old, final)  # finish an interrupted swap: .old was the last good one
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


# ------------------------------------------------------------- optimizer and RNG state


def training_state(
    optimizer: torch.optim.Optimizer, step: int, task_state: dict[str, Any]
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Everything a resume needs besides the weights, as (tensors, JSON) - no pickle."""
    tensors: dict[str, torch.Tensor] = {}
    opt = optimizer.state_dict()
    opt_json = {
        "param_groups": opt["param_groups"],
        "state": {
            str(i): _split(s, f"optimizer.{i}", tensors)
            for i, s in opt["state"].items()
        },
    }
    tensors["rng.torch"] = torch.get_rng_state()
    n_cuda = torch.cuda.device_count() if torch.cuda.is_initialized() else 0
    for i in range(n_cuda):
        tensors[f"rng.cuda.{i}"] = torch.cuda.get_rng_state(i)
    version, internal, gauss = random.getstate()
    state_json = {
        "step": step,
        "optimizer": opt_json,
        "python_random": [version, list(internal), gauss],
        "cuda_rng": n_cuda,
        "task": _split(task_state, "task", tensors),
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    return tensors, state_json


def _split(obj: Any, key: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Replace each tensor in a nested value by ``{"tensor": key}``, filling tensors."""
    if isinstance(obj, torch.Tensor):
        tensors[key] = obj
        return {"tensor": key}
    if isinstance(obj, dict):
        return {
            "dict": {str(k): _split(v, f"{key}.{k}", tensors) for k, v in obj.items()}
        }
    if isinstance(obj, (tuple, list)):
        items = [_split(v, f"{key}.{i}", tensors) for i, v in enumerate(obj)]
        return {"tuple" if isinstance(obj, tuple) else "list": items}
    return {"value": obj}


def _join(spec: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`_split`."""
    if "tensor" in spec:
        return tensors[spec["tensor"]]
    if "dict" in spec:
        return {k: _join(v, tensors) for k, v in spec["dict"].items()}
    if "tuple" in spec:
        return tuple(_join(v, tensors) for v in spec["tuple"])
    if "list" in spec:
        return [_join(v, tensors) for v in spec["list"]]
    return spec["value"]


def restore_training_state(
    path: str | os.PathLike, optimizer: torch.optim.Optimizer
) -> tuple[int, dict[str, Any]]:
    """Load optimizer and RNG state from a checkpoint; return (step, task state)."""
    folder = checkpoint_dir(path)
    _require(folder, (STATE_TENSORS, STATE_JSON))
    tensors = _read_tensors(folder / STATE_TENSORS)
    state = _read_json(folder / STATE_JSON)
    try:
        opt = state["optimizer"]
        optimizer.load_state_dict(
            {
                "param_groups": [_fix_group(g) for g in opt["param_groups"]],
                "state": {int(i): _join(s, tensors) for i, s in opt["state"].items()},
            }
        )
        torch.set_rng_state(tensors["rng.torch"])
        for i in range(min(state["cuda_rng"], torch.cuda.device_count())):
            torch.cuda.set_rng_state(tensors[f"rng.cuda.{i}"], i)
        version, internal, gauss = state["python_random"]
        random.setstate((version, tuple(internal), gauss))
        return int(state["step"]), _join(state["task"], tensors)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise ToytorchError(
            f"checkpoint file {folder / STATE_JSON} does not fit this run ({e}); "
            "train without --resume to start over"
        ) from None


def _fix_group(group: dict[str, Any]) -> dict[str, Any]:
    """JSON turned tuples into lists; torch's optimizers expect tuple betas."""
    return {k: tuple(v) if k == "betas" else v for k, v in group.items()}


# ----------------------------------------------------------------------------- reading


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model in eval mode, its tokenizer (None if absent)."""

    path: Path
    model: nn.Module
    tokenizer: Any
    config: dict[str, Any]
    metrics: dict[str, Any]


def checkpoint_dir(path: str | os.PathLike) -> Path:
    """The folder to read: ``path``, or its ``.old`` twin after an interrupted save."""
    folder = Path(path)
    if folder.is_dir():
        return folder
    old = _sibling(folder, "old")
    if old.is_dir():
        return old
    if folder.exists():
        raise ToytorchError(f"checkpoint {folder} is a file, not a checkpoint folder")
    raise ToytorchError(f"checkpoint folder {folder} does not exist")


def checkpoint_found(path: str | os.PathLike) -> bool:
    """True when ``path`` or its ``.old`` twin exists (a file too: loading names it)."""
    folder = Path(path)
    return folder.exists() or _sibling(folder, "old").exists()


def checkpoint_exists(path: str | os.PathLike) -> bool:
    """True when ``path`` (or its ``.old`` twin) is a folder with a config.json."""
    folder = Path(path)
    return (folder / CONFIG_FILE).is_file() or (
        _sibling(folder, "old") / CONFIG_FILE
    ).is_file()


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """``config.json`` of a checkpoint, checked for its format."""
    folder = checkpoint_dir(path)
    _require(folder, (CONFIG_FILE,))
    config = _read_json(folder / CONFIG_FILE)
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ToytorchError(
            f"{folder / CONFIG_FILE} is not a toytorch checkpoint config"
        )
    return config


def read_metrics(path: str | os.PathLike) -> dict[str, Any]:
    folder = checkpoint_dir(path)
    _require(folder, (METRICS_FILE,))
    return _read_json(folder / METRICS_FILE)


def load_weights(path: str | os.PathLike, model: nn.Module) -> None:
    """Load ``model.safetensors`` into ``model`` (on the model's own device)."""
    from safetensors.torch import load_model

    folder = checkpoint_dir(path)
    _require(folder, (MODEL_FILE,))
    file = folder / MODEL_FILE
    device = next(unwrap(model).parameters()).device
    try:
        load_model(unwrap(model), str(file), strict=True, device=str(device))
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ToytorchError(f"{file} does not fit its config.json: {first}") from None
    except Exception as e:  # safetensors raises its own SafetensorError on bad bytes
        raise ToytorchError(f"{file} is corrupt or truncated ({e})") from None


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """Rebuild the model (and tokenizer) saved in a checkpoint folder.

    Every file is checked first, so a folder missing one, or holding a corrupt one,
    raises a one-line ToytorchError naming the file.
    """
    from toytorch.models import model_from_config

    folder = checkpoint_dir(path)
    _require(folder, REQUIRED)
    config = read_config(folder)
    try:
        model = model_from_config(config["model"])
    except (KeyError, TypeError, ValueError) as e:
        raise ToytorchError(
            f"{folder / CONFIG_FILE} has a bad model config: {e}"
        ) from None
    load_weights(folder, model)
    model.to(device).eval()
    tokenizer = read_tokenizer(folder)
    return Checkpoint(folder, model, tokenizer, config, read_metrics(folder))


def read_tokenizer(path: str | os.PathLike) -> Any:
    """The checkpoint's tokenizer, or None when it has no tokenizer.json."""
    file = checkpoint_dir(path) / "tokenizer.json"
    if not file.exists():
        return None
    from toytorch.tokenizers import load_tokenizer

    try:
        return load_tokenizer(file)
    except ToytorchError:
        raise
    except Exception as e:
        raise ToytorchError(f"{file} is corrupt ({type(e).__name__}: {e})") from None


def list_checkpoints(root: str | os.PathLike) -> list[Path]:
    """Checkpoint folders directly under ``root``, newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [
        p
        for p in root.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / CONFIG_FILE).is_file()
    ]
    return sorted(found, key=lambda p: (p / CONFIG_FILE).stat().st_mtime, reverse=True)


def _require(folder: Path, names: tuple[str, ...]) -> None:
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise ToytorchError(f"checkpoint {folder} is missing {', '.join(missing)}")


def _read_json(file: Path) -> Any:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ToytorchError(f"{file} is corrupt: {e}") from None


def _read_tensors(file: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(file), device="cpu")
    except Exception as e:  # safetensors raises its own SafetensorError on bad bytes
        raise ToytorchError(f"{file} is corrupt or truncated ({e})") from None
