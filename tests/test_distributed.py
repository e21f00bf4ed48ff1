"""Distributed training: 2 CPU processes (gloo on 127.0.0.1) against 1 process.

The reference is a single-process run of the same loop with the same global batch and
seed, computed in this test. Two processes must end with the same weights (to float
tolerance), report the same losses and validation metrics, resume to the same curve,
and resume a single-process checkpoint, for the windowed Transformer and the LSTM
that carries its state across steps.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import pytest
import torch

dist = pytest.importorskip("torch.distributed")
if not dist.is_available() or not dist.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

import distributed_helpers as h  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from toytorch.errors import ToytorchError  # noqa: E402
from toytorch.training import TrainConfig, distributed  # noqa: E402
from toytorch.training import checkpoint as ckpt  # noqa: E402

WORLD = 2
# A bound on a hang, not a speed test: the runs take about 20 s on an idle 2-core
# machine, but 150 s was once too short with two other trainings running beside them.
TIMEOUT_S = 480


def _single_env() -> mock._patch_dict:
    """os.environ without torchrun's variables, restored afterwards."""
    patch = mock.patch.dict(os.environ)
    patch.start()
    for key in distributed.ENV_VARS:
        os.environ.pop(key, None)
    return patch


def _spawn(root: Path) -> None:
    """Run ``h.worker`` on WORLD processes; fail (not hang) after TIMEOUT_S."""
    import torch.multiprocessing as mp

    if Path("/sys/class/net/lo").exists():
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # not the hostname's NIC
    args = (WORLD, h.free_ports(h.RUNS_PER_WORKER), str(root))
    context = mp.start_processes(
        h.worker, args, WORLD, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + TIMEOUT_S
    while not context.join(timeout=5):
        if time.monotonic() > deadline:
            for p in context.processes:
                p.terminate()
            pytest.fail(f"the {WORLD} training processes did not end in {TIMEOUT_S} s")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Single-process runs here, then the same runs on WORLD spawned processes."""
    root = tmp_path_factory.mktemp("distributed")
    patch = _single_env()
    try:
        single = {}
        for arch in h.ARCHS:
            mine = root / f"{arch}-1"
            single[f"{arch}/full"] = h.run(arch, mine / "full")
            single[f"{arch}/part"] = h.run(arch, mine / "part", stop_at=h.STOP_AT)
            shutil.copytree(mine / "part", mine / "cross")
        _spawn(root)
    finally:
        patch.stop()
    ranks = [json.loads((root / f"rank{r}.json").read_text()) for r in range(WORLD)]
    return root, single, ranks


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / ckpt.MODEL_FILE))


def _assert_same_weights(a: Path, b: Path, tol: float) -> None:
    wa, wb = _weights(a), _weights(b)
    assert sorted(wa) == sorted(wb)
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], atol=tol, rtol=tol, msg=key)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("arch", h.ARCHS)
def test_two_processes_end_with_the_single_process_weights(runs, arch):
    root, single, ranks = runs
    _assert_same_weights(root / f"{arch}-1" / "full", root / f"{arch}-2" / "full", 1e-5)
    # and training moved the weights: the comparison is not of two initialisations
    start = h.make_model(arch).state_dict()
    end = _weights(root / f"{arch}-2" / "full")
    assert any(not torch.allclose(start[k], end[k], atol=1e-3) for k in end)


@pytest.mark.parametrize("arch", h.ARCHS)
def test_losses_and_validation_are_those_of_the_global_batch(runs, arch):
    root, single, ranks = runs
    want = single[f"{arch}/full"]
    for got in (r[f"{arch}/full"] for r in ranks):  # every rank reports the same
        assert len(got["losses"]) == h.STEPS
        torch.testing.assert_close(got["losses"], want["losses"], atol=1e-5, rtol=1e-5)
        assert [e[0] for e in got["evals"]] == [2, 4, 6]
        torch.testing.assert_close(got["evals"], want["evals"], atol=1e-5, rtol=1e-5)
    assert want["losses"][-1] < want["losses"][0]


@pytest.mark.parametrize("arch", h.ARCHS)
def test_a_resumed_two_process_run_continues_the_same_curve(runs, arch):
    root, single, ranks = runs
    for r in ranks:
        full, part = r[f"{arch}/full"], r[f"{arch}/part"]
        resumed = r[f"{arch}/resumed"]
        assert len(part["losses"]) == h.STOP_AT  # rank 0 asked, every rank stopped
        assert part["losses"] + resumed["losses"] == full["losses"]  # exactly
    _assert_same_weights(root / f"{arch}-2" / "part", root / f"{arch}-2" / "full", 0)
    history = ckpt.read_metrics(root / f"{arch}-2" / "part")["train_loss"]
    assert [loss for _, loss in history] == ranks[0][f"{arch}/full"]["losses"]


@pytest.mark.parametrize("arch", h.ARCHS)
def test_two_processes_resume_a_single_process_checkpoint(runs, arch):
    root, single, ranks = runs
    want = single[f"{arch}/full"]["losses"][h.STOP_AT :]
    got = ranks[0][f"{arch}/cross"]["losses"]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    _assert_same_weights(
        root / f"{arch}-1" / "full", root / f"{arch}-1" / "cross", 1e-5
    )


def test_only_rank_zero_writes_checkpoints(runs):
    root, single, ranks = runs
    assert ranks[0]["saves"]["count"] > 0
    assert ranks[1]["saves"]["count"] == 0
    leftovers = [p.name for p in root.rglob(".*")]  # .NAME.tmp-PID, .NAME.old
    assert leftovers == []


# ------------------------------------------------------- without a process group


def test_batch_size_must_split_over_the_processes(monkeypatch):
    for key, value in dict(RANK="0", WORLD_SIZE="2", LOCAL_RANK="0").items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ToytorchError, match="batch size 3 does not split over 2"):
        distributed.setup(TrainConfig(batch_size=3, device="cpu"))


def test_world_size_without_a_rendezvous_address_is_refused(monkeypatch):
    for key, value in dict(RANK="1", WORLD_SIZE="2").items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(ToytorchError, match="MASTER_ADDR"):
        distributed.setup(TrainConfig(batch_size=4, device="cpu"))


def test_a_single_process_is_left_alone(monkeypatch):
    for key in distributed.ENV_VARS:
        monkeypatch.delenv(key, raising=False)
    one, device = distributed.setup(TrainConfig(batch_size=3, device="cpu"))
    assert not one.enabled and one.is_main and device == torch.device("cpu")
    batch = (torch.arange(6).view(3, 2), True)
    assert one.shard(batch) is batch


def test_each_rank_takes_its_contiguous_rows():
    x = torch.arange(12).view(6, 2)
    state = {"carried": (torch.arange(12).view(1, 6, 2),)}
    rank1 = distributed.Distributed(rank=1, world_size=3)
    sx, first = rank1.shard((x, True))
    assert sx.tolist() == [[4, 5], [6, 7]] and first is True
    (h_state,) = rank1.shard_task_state(state)["carried"]  # batch is dim 1 of (L, B, H)
    assert h_state.tolist() == [[[4, 5], [6, 7]]]
    with pytest.raises(ToytorchError, match="batch of 5 rows"):
        rank1.shard((x[:5], True))


# ------------------------------------------------------------- the command line


@pytest.mark.timeout(300)
def test_toytorch_train_under_torchrun_matches_one_process(tmp_path, monkeypatch):
    """The same command line: here in this process, then on 2 torchrun workers."""
    from typer.testing import CliRunner

    from toytorch.cli.main import app

    corpus = tmp_path / "song.txt"
    corpus.write_text("la la land, da da dance\n" * 40, encoding="utf-8")
    args = [
        *("train", "--corpus", str(corpus), "--tokenizer", "char"),
        *("--layers", "1", "--heads", "2", "--width", "16", "--context", "8"),
        *("--batch-size", "4", "--max-steps", "4", "--warmup", "1"),
        *("--eval-every", "2", "--eval-batches", "2", "--device", "cpu"),
        *("--threads", "1"),
    ]
    for key in distributed.ENV_VARS:
        monkeypatch.delenv(key, raising=False)
    threads = torch.get_num_threads()
    try:
        one = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "one")])
    finally:
        torch.set_num_threads(threads)  # --threads 1 must not slow the other tests
    assert one.exit_code == 0, one.output

    env = dict(os.environ)
    if Path("/sys/class/net/lo").exists():
        env["GLOO_SOCKET_IFNAME"] = "lo"
    torchrun = [
        *(sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"),
        *("--master_addr", "127.0.0.1", "--master_port", str(h.free_ports(1)[0])),
        *("-m", "toytorch.cli.main", *args, "--out", str(tmp_path / "two")),
    ]
    two = subprocess.run(
        torchrun, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )
    assert two.returncode == 0, two.stderr[-3000:]
    _assert_same_weights(tmp_path / "one", tmp_path / "two", 1e-5)
    assert two.stdout.count("tokenizer: training") == 1  # rank 0 prints, alone
    assert two.stdout.count("finished at step 4") == 1
    assert "distributed: 2 processes (gloo)" in two.stdout
