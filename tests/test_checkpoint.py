"""Checkpoint folders: atomic writes, no pickle, prefixes stripped, clear errors."""

import json
import os
import pickle
import random
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open
from torch import nn
from training_helpers import toy_model

from toytorch.errors import ToytorchError
from toytorch.training import checkpoint as ckpt


class Tied(nn.Module):
    """An embedding whose weight is also the output head (stored once)."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(11, 6)
        self.norm = nn.LayerNorm(6)
        self.head = nn.Linear(6, 11, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, idx):
        return self.head(self.norm(self.emb(idx)))


def save(path, model, step=1, **kw):
    config = {"step": step, "model": None, "training": {}, "task": {}}
    return ckpt.save_checkpoint(path, model, config, {"step": step}, **kw)


def test_weights_round_trip_with_tied_weights(tmp_path):
    torch.manual_seed(0)
    a, b = Tied(), Tied()
    save(tmp_path / "c", a)
    ckpt.load_weights(tmp_path / "c", b)
    for (ka, va), (kb, vb) in zip(
        a.state_dict().items(), b.state_dict().items(), strict=True
    ):
        assert ka == kb and torch.equal(va, vb)
    assert b.head.weight is b.emb.weight  # still tied after loading


def test_compiled_model_keys_carry_no_prefix(tmp_path):
    model = toy_model()
    compiled = torch.compile(model)  # lazy: nothing compiles until the first call
    assert all(k.startswith("_orig_mod.") for k in compiled.state_dict())
    save(tmp_path / "c", compiled)
    with safe_open(str(tmp_path / "c" / ckpt.MODEL_FILE), "pt") as f:
        keys = set(f.keys())
    assert keys == set(model.state_dict())


def test_loading_never_unpickles(tmp_path, monkeypatch):
    model = toy_model()
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(3, 4)).sum().backward()
    opt.step()
    save(tmp_path / "c", model, training_state=ckpt.training_state(opt, 1, {}))

    def refuse(*a, **k):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    ckpt.load_weights(tmp_path / "c", toy_model(seed=1))
    ckpt.restore_training_state(tmp_path / "c", torch.optim.AdamW(model.parameters()))
    names = sorted(os.listdir(tmp_path / "c"))
    assert not any(n.endswith((".pt", ".pth", ".pkl", ".bin")) for n in names)


def test_optimizer_rng_and_task_state_round_trip(tmp_path):
    model = toy_model()
    opt = torch.optim.AdamW(model.parameters(), betas=(0.8, 0.95), weight_decay=0.1)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(5, 4)).pow(2).mean().backward()
        opt.step()
    carried = (torch.randn(1, 2, 3), torch.randn(1, 2, 3))
    state = ckpt.training_state(opt, 3, {"carried": carried, "pass": 2})
    save(tmp_path / "c", model, training_state=state)
    want_torch, want_py = torch.rand(4), random.random()

    fresh = torch.optim.AdamW(model.parameters())
    step, task_state = ckpt.restore_training_state(tmp_path / "c", fresh)
    assert step == 3 and task_state["pass"] == 2
    assert isinstance(task_state["carried"], tuple)
    assert all(
        torch.equal(a, b) for a, b in zip(task_state["carried"], carried, strict=True)
    )
    assert torch.equal(torch.rand(4), want_torch) and random.random() == want_py

    got, want = fresh.state_dict(), opt.state_dict()
    assert got["param_groups"] == want["param_groups"]
    assert fresh.param_groups[0]["betas"] == (0.8, 0.95)
    for i, s in want["state"].items():
        for k, v in s.items():
            assert torch.equal(got["state"][i][k], v), (i, k)


def test_interrupted_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = toy_model()
    save(tmp_path / "c", model, step=1)
    before = (tmp_path / "c" / ckpt.MODEL_FILE).read_bytes()

    def crash(path, text):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "_write_text", crash)
    with pytest.raises(ToytorchError, match="cannot write checkpoint .*c: disk full"):
        save(tmp_path / "c", toy_model(seed=5), step=2)
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["c"]  # the failed save cleaned up
    assert (tmp_path / "c" / ckpt.MODEL_FILE).read_bytes() == before
    assert ckpt.read_config(tmp_path / "c")["step"] == 1
    save(tmp_path / "c", model, step=3)  # the stale temporary folder is no obstacle
    assert ckpt.read_config(tmp_path / "c")["step"] == 3
    assert sorted(os.listdir(tmp_path)) == ["c"]


def test_crash_between_the_renames_is_recovered(tmp_path):
    model = toy_model()
    save(tmp_path / "c", model, step=1)
    os.replace(tmp_path / "c", tmp_path / ".c.old")  # as if killed after rename one
    assert ckpt.read_config(tmp_path / "c")["step"] == 1  # reads the .old folder
    save(tmp_path / "c", model, step=2)
    assert sorted(os.listdir(tmp_path)) == ["c"]
    assert ckpt.read_config(tmp_path / "c")["step"] == 2


@pytest.mark.parametrize("name", ["model.safetensors", "config.json", "metrics.json"])
def test_missing_file_is_named(tmp_path, name):
    save(tmp_path / "c", toy_model())
    (tmp_path / "c" / name).unlink()
    with pytest.raises(ToytorchError, match=f"missing {name}"):
        ckpt.load_checkpoint(tmp_path / "c")


def test_corrupt_files_are_named(tmp_path):
    model = toy_model()
    save(tmp_path / "c", model)
    weights = tmp_path / "c" / ckpt.MODEL_FILE
    weights.write_bytes(weights.read_bytes()[:40])
    with pytest.raises(ToytorchError, match="model.safetensors is corrupt") as e:
        ckpt.load_weights(tmp_path / "c", toy_model())
    assert "\n" not in str(e.value)

    (tmp_path / "c" / ckpt.CONFIG_FILE).write_text("{not json")
    with pytest.raises(ToytorchError, match="config.json is corrupt"):
        ckpt.read_config(tmp_path / "c")
    (tmp_path / "c" / ckpt.CONFIG_FILE).write_text(json.dumps({"x": 1}))
    with pytest.raises(ToytorchError, match="not a toytorch checkpoint"):
        ckpt.read_config(tmp_path / "c")


def test_weights_that_do_not_fit_the_model(tmp_path):
    save(tmp_path / "c", toy_model())
    with pytest.raises(ToytorchError, match="does not fit"):
        ckpt.load_weights(tmp_path / "c", Tied())


def test_missing_folder(tmp_path):
    with pytest.raises(ToytorchError, match="does not exist"):
        ckpt.load_checkpoint(tmp_path / "nope")


def test_list_checkpoints_skips_hidden_and_foreign_folders(tmp_path):
    save(tmp_path / "a", toy_model())
    save(tmp_path / "b", toy_model())
    (tmp_path / "empty").mkdir()
    (tmp_path / ".b.old").mkdir()
    assert {p.name for p in ckpt.list_checkpoints(tmp_path)} == {"a", "b"}
    assert ckpt.list_checkpoints(tmp_path / "none") == []


def test_a_save_never_replaces_what_is_not_a_checkpoint(tmp_path):
    notes = tmp_path / "notes"
    (notes / "sub").mkdir(parents=True)
    (notes / "notes.txt").write_text("mine")
    (notes / "sub" / "y").write_text("also mine")
    with pytest.raises(ToytorchError, match="exists and is not a toytorch checkpoint"):
        save(notes, toy_model())
    assert (notes / "notes.txt").read_text() == "mine"
    assert (notes / "sub" / "y").read_text() == "also mine"

    own = tmp_path / "own"  # a user's own weights file, no toytorch config.json
    own.mkdir()
    (own / ckpt.MODEL_FILE).write_bytes(b"user weights")
    with pytest.raises(ToytorchError, match="not a toytorch checkpoint"):
        save(own, toy_model())
    assert (own / ckpt.MODEL_FILE).read_bytes() == b"user weights"

    file = tmp_path / "file.txt"
    file.write_text("text")
    with pytest.raises(ToytorchError, match="is a file; choose a folder"):
        save(file, toy_model())
    assert file.read_text() == "text"

    empty = tmp_path / "empty"
    empty.mkdir()
    save(empty, toy_model())  # an empty folder is fine
    assert ckpt.is_checkpoint(empty)
    assert ckpt.check_target(empty) is True


def test_an_unwritable_place_is_one_error(tmp_path):
    blocker = tmp_path / "plain"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(ToytorchError, match="cannot write checkpoint"):
        save(blocker / "c", toy_model())
    with pytest.raises(ToytorchError, match="--out .* cannot be written"):
        ckpt.check_writable(blocker / "c", "--out")
    assert blocker.read_text() == "a file where a folder should be"


def test_stale_temporary_folders_are_cleared(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = tmp_path / f".c.tmp-{done.stdout.strip()}"  # its process has exited
    live = tmp_path / f".c.tmp-{os.getppid()}"  # a running process: left alone
    for d in (dead, live):
        d.mkdir()
        (d / "half.bin").write_bytes(b"x")
    save(tmp_path / "c", toy_model())
    assert not dead.exists() and live.exists()
