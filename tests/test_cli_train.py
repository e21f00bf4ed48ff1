"""``toytorch train`` and ``toytorch generate`` end to end on a tiny model."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from toytorch.cli.main import main

TEXT = (
    "The kettle sings a song of steam, the window fogs, the morning's dream;\n"
    "the sparrow hops along the sill, the clock is slow, the town is still.\n"
) * 20
TINY = [
    "--layers", "1", "--width", "16", "--heads", "2", "--context", "16",
    "--batch-size", "4", "--eval-every", "3", "--eval-batches", "2", "--warmup", "2",
]  # fmt: skip
TOYTORCH = Path(sys.executable).with_name("toytorch")


def cli(monkeypatch, capsys, *args):
    """Run the command in this process; return (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["toytorch", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out = capsys.readouterr()
    code = exit_info.value.code
    return (0 if code is None else code), out.out, out.err


def assert_one_line_error(code, out, err, *words):
    assert code != 0
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for w in words:
        assert w in lines[0], (w, lines[0])


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "kettle.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture
def trained(tmp_path, corpus, monkeypatch, capsys):
    out = tmp_path / "ck"
    args = ["train", "--corpus", corpus, *TINY, "--max-steps", "6", "--out", out]
    code, stdout, err = cli(monkeypatch, capsys, *args)
    assert code == 0, err
    return out, stdout


def test_train_writes_a_checkpoint_and_a_summary(trained):
    out, stdout = trained
    for name in ("model.safetensors", "config.json", "tokenizer.json", "metrics.json"):
        assert (out / name).is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["arch"] == "transformer" and config["model"]["n_layer"] == 1
    assert config["task"]["corpus"]["name"].endswith("kettle.txt")
    assert config["training"]["max_steps"] == 6
    assert "optimizer: AdamW" in stdout  # the start-up decisions
    assert "step 3/6 | loss" in stdout and "| val " in stdout  # metric lines
    assert "finished at step 6" in stdout


def test_generate_streams_repeatable_text(trained, monkeypatch, capsys):
    out, _ = trained
    args = [
        "generate",
        out,
        "--prompt",
        "The kettle",
        "--max-tokens",
        "30",
        "--seed",
        "3",
    ]
    code, first, err = cli(monkeypatch, capsys, *args)
    assert code == 0, err
    assert first.startswith("The kettle") and len(first.rstrip("\n")) == 40
    assert cli(monkeypatch, capsys, *args)[1] == first
    code, empty, _ = cli(monkeypatch, capsys, "generate", out, "--max-tokens", "5")
    assert code == 0 and len(empty.rstrip("\n")) >= 1


def test_resume_continues_to_more_steps(trained, corpus, monkeypatch, capsys):
    out, _ = trained
    args = ["train", "--corpus", corpus, "--out", out, "--resume", "--max-steps", "8"]
    code, stdout, err = cli(monkeypatch, capsys, *args)
    assert code == 0, err
    assert "resumed at step 6" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["step"] == 8
    assert [s for s, _ in metrics["train_loss"]] == list(range(1, 9))


def test_toml_sets_options_and_flags_override(tmp_path, corpus, monkeypatch, capsys):
    toml = tmp_path / "run.toml"
    toml.write_text(
        f'corpus = "{corpus}"\nlayers = 1\nwidth = 16\nheads = 2\ncontext = 16\n'
        "batch-size = 4\nmax_steps = 4\neval_every = 2\neval_batches = 1\nlr = 1\n"
    )
    out = tmp_path / "ck"
    args = [
        "train",
        "--config",
        toml,
        "--max-steps",
        "3",
        "--lr",
        "0.002",
        "--out",
        out,
    ]
    code, _, err = cli(monkeypatch, capsys, *args)
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())
    assert config["training"]["max_steps"] == 3 and config["training"]["lr"] == 0.002
    assert config["training"]["batch_size"] == 4 and config["model"]["d_model"] == 16

    toml.write_text("layers = 1\nlearning_rate = 3\n")
    assert_one_line_error(
        *cli(monkeypatch, capsys, "train", "--config", toml), "learning_rate"
    )
    toml.write_text('layers = "two"\n')
    assert_one_line_error(
        *cli(monkeypatch, capsys, "train", "--config", toml), "layers"
    )


def test_lstm_trains_from_the_cli(tmp_path, corpus, monkeypatch, capsys):
    out = tmp_path / "lstm"
    args = ["train", "--corpus", corpus, "--model", "lstm", *TINY, "--max-steps", "3"]
    code, stdout, err = cli(monkeypatch, capsys, *args, "--out", out)
    assert code == 0, err
    assert "state carried detached" in stdout
    assert json.loads((out / "config.json").read_text())["model"]["arch"] == "lstm"


@pytest.mark.parametrize(
    "args, words",
    [
        (["--model", "gru"], ["--model", "gru"]),
        (["--tokenizer", "sentencepiece"], ["--tokenizer"]),
        (["--corpus", "no/such/file.txt"], ["no/such/file.txt"]),
        (["--threads", "0"], ["--threads"]),
    ],
)
def test_bad_train_options(monkeypatch, capsys, tmp_path, args, words):
    out = ["--out", tmp_path / "x"]
    assert_one_line_error(*cli(monkeypatch, capsys, "train", *args, *out), *words)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu(monkeypatch, capsys, corpus, tmp_path):
    args = ["train", "--corpus", corpus, "--device", "cuda", "--out", tmp_path / "x"]
    assert_one_line_error(*cli(monkeypatch, capsys, *args), "cuda", "no CUDA")


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"  \n\n",
        b"\x00\x01\x02binary\x00",
        "caf\u00e9 cr\u00e8me".encode("latin-1"),
    ],
    ids=["empty", "blank", "binary", "latin-1"],
)
def test_bad_corpus_files(monkeypatch, capsys, tmp_path, content):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    args = ["train", "--corpus", path, "--out", tmp_path / "x"]
    assert_one_line_error(*cli(monkeypatch, capsys, *args), "bad.txt")


def test_existing_run_is_not_overwritten(trained, corpus, monkeypatch, capsys):
    out, _ = trained
    args = ["train", "--corpus", corpus, *TINY, "--max-steps", "3", "--out", out]
    assert_one_line_error(*cli(monkeypatch, capsys, *args), "--resume", "--force")
    code, _, err = cli(monkeypatch, capsys, *args, "--force")
    assert code == 0, err
    assert json.loads((out / "config.json").read_text())["step"] == 3


def test_resume_needs_a_checkpoint(tmp_path, corpus, monkeypatch, capsys):
    args = ["train", "--corpus", corpus, "--resume", "--out", tmp_path / "none"]
    assert_one_line_error(*cli(monkeypatch, capsys, *args), "does not exist")


def test_bad_checkpoints_and_prompts(trained, monkeypatch, capsys):
    out, _ = trained
    bad_prompt = ["generate", out, "--prompt", "Zebra \u20ac"]
    assert_one_line_error(*cli(monkeypatch, capsys, *bad_prompt), "'Z'", "'\u20ac'")
    too_hot = ["generate", out, "--temperature", "-1"]
    assert_one_line_error(*cli(monkeypatch, capsys, *too_hot), "temperature")

    (out / "config.json").write_text("{broken")
    gen = ["generate", out]
    assert_one_line_error(*cli(monkeypatch, capsys, *gen), "config.json")
    (out / "model.safetensors").unlink()
    assert_one_line_error(*cli(monkeypatch, capsys, *gen), "model.safetensors")
    nowhere = ["generate", out.parent / "nowhere"]
    assert_one_line_error(*cli(monkeypatch, capsys, *nowhere), "does not exist")


@pytest.mark.parametrize("command", ["train", "generate"])
def test_help(monkeypatch, capsys, command):
    code, out, _ = cli(monkeypatch, capsys, command, "--help")
    assert code == 0 and "Usage" in out


def test_ctrl_c_stops_after_the_step_and_saves(tmp_path, corpus):
    out = tmp_path / "ck"
    args = ["train", "--corpus", corpus, *TINY, "--max-steps", "100000", "--out", out]
    proc = subprocess.Popen(
        [str(TOYTORCH), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    deadline = time.monotonic() + 120
    while not (out / "config.json").exists() and time.monotonic() < deadline:
        time.sleep(0.2)  # the first checkpoint: the loop is running
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    stopped = json.loads((out / "config.json").read_text())["step"]
    assert 3 <= stopped < 100000
    assert f"stopped at step {stopped}" in stdout


# ----------------------------------------------------- what --out may replace


def _user_folder(tmp_path):
    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("my notes")
    (folder / "sub" / "y").write_text("y")
    return folder, {"notes.txt": "my notes", "sub/y": "y"}


def _user_file(tmp_path):
    file = tmp_path / "file.txt"
    file.write_text("keep me")
    return file, {"": "keep me"}


def _user_weights(tmp_path):
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "model.safetensors").write_text("not toytorch's")
    return folder, {"model.safetensors": "not toytorch's"}


@pytest.mark.parametrize(
    "make, words",
    [
        (_user_folder, ["is not a toytorch checkpoint", "--out"]),
        (_user_file, ["is a file; choose a folder"]),
        (_user_weights, ["is not a toytorch checkpoint"]),
    ],
)
@pytest.mark.parametrize("force", [False, True])
def test_out_never_replaces_the_users_files(
    tmp_path, corpus, monkeypatch, capsys, make, words, force
):
    target, contents = make(tmp_path)
    args = ["train", "--corpus", corpus, *TINY, "--max-steps", "3", "--out", target]
    args += ["--force"] if force else []
    code, out, err = cli(monkeypatch, capsys, *args)
    assert code == 1
    assert_one_line_error(code, out, err, *words)
    for rel, text in contents.items():
        assert (target / rel if rel else target).read_text() == text
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_out_dot_in_a_repository_is_refused(tmp_path, corpus, monkeypatch, capsys):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "README.md").write_text("a project")
    monkeypatch.chdir(repo)
    args = ["train", "--corpus", corpus, *TINY, "--max-steps", "3", "--out", "."]
    assert_one_line_error(*cli(monkeypatch, capsys, *args), "not a toytorch checkpoint")
    assert sorted(os.listdir(repo)) == ["README.md"]


@pytest.mark.parametrize("where", ["/proc/forbidden", "plain/c"])
def test_unwritable_out_fails_before_training(
    tmp_path, corpus, monkeypatch, capsys, where
):
    (tmp_path / "plain").write_text("a file, not a folder")
    monkeypatch.chdir(tmp_path)
    args = ["train", "--corpus", corpus, *TINY, "--max-steps", "3", "--out", where]
    code, out, err = cli(monkeypatch, capsys, *args)
    assert_one_line_error(code, out, err, where, "cannot be written")
    assert "tokenizer: training" not in out  # refused before any work


# ------------------------------------------------------------ bad numbers


@pytest.mark.parametrize(
    "args, words",
    [
        (["--lr", "-1"], ["--lr must be > 0, got -1"]),
        (["--lr", "nan"], ["--lr", "nan"]),
        (["--warmup", "-5"], ["--warmup", "-5"]),
        (["--epochs", "0"], ["--epochs", "0"]),
        (["--eval-every", "-1"], ["--eval-every", "-1"]),
        (["--eval-batches", "0"], ["--eval-batches", "0"]),
        (["--grad-clip", "-1"], ["--grad-clip", "-1"]),
        (["--weight-decay", "-1"], ["--weight-decay", "-1"]),
        (["--min-lr", "5"], ["--min-lr", "5"]),
        (["--val-fraction", "1"], ["--val-fraction", "1"]),
        (["--warmup", "10", "--max-steps", "5"], ["--warmup 10", "5 steps"]),
    ],
)
def test_bad_numbers_are_one_line(tmp_path, corpus, monkeypatch, capsys, args, words):
    out = tmp_path / "x"
    argv = ["train", "--corpus", corpus, "--out", out, *args]
    assert_one_line_error(*cli(monkeypatch, capsys, *argv), *words)
    assert not out.exists()


def test_warmup_default_fits_a_short_run(tmp_path, corpus, monkeypatch, capsys):
    out = tmp_path / "ck"
    args = TINY[:-2]  # all but --warmup 2
    argv = ["train", "--corpus", corpus, *args, "--max-steps", "30", "--out", out]
    code, _, err = cli(monkeypatch, capsys, *argv)
    assert code == 0, err
    assert json.loads((out / "config.json").read_text())["training"]["warmup"] == 3


def test_toml_setting_one_key_twice_is_refused(tmp_path, monkeypatch, capsys):
    toml = tmp_path / "run.toml"
    toml.write_text("batch_size = 4\nbatch-size = 8\nlr = 0.01\n")
    argv = ["train", "--config", toml, "--out", tmp_path / "ck"]
    assert_one_line_error(*cli(monkeypatch, capsys, *argv), "sets batch-size twice")


def test_benchmark_toml_keeps_its_warmup(tmp_path, corpus, monkeypatch, capsys):
    import toytorch.cli.train as train_cli

    seen = []
    monkeypatch.setattr(
        train_cli, "run_training", lambda m, t, c, resume: seen.append(c)
    )
    toml = Path(__file__).parents[1] / "benchmarks" / "shakespeare_char.toml"
    argv = ["train", "--config", toml, "--corpus", corpus, "--out", tmp_path / "b"]
    code, _, err = cli(monkeypatch, capsys, *argv)
    assert code == 0, err
    assert seen[0].warmup == 100 and seen[0].max_steps == 2000


def test_untied_head_is_its_own_weight(tmp_path, corpus, monkeypatch, capsys):
    from safetensors.torch import load_file

    out = tmp_path / "ck"
    argv = ["train", "--corpus", corpus, *TINY, "--max-steps", "3", "--out", out]
    code, _, err = cli(monkeypatch, capsys, *argv, "--no-tie-weights")
    assert code == 0, err
    assert (
        json.loads((out / "config.json").read_text())["model"]["tie_weights"] is False
    )
    weights = load_file(out / "model.safetensors")
    assert not torch.equal(weights["head.weight"], weights["embed.weight"])


def test_encoding_option_reads_other_encodings(tmp_path, monkeypatch, capsys):
    path = tmp_path / "latin.txt"
    path.write_bytes(TEXT.replace("kettle", "caf\u00e9").encode("latin-1"))
    out = tmp_path / "ck"
    argv = ["train", "--corpus", path, *TINY, "--max-steps", "3", "--out", out]
    assert_one_line_error(*cli(monkeypatch, capsys, *argv), "--encoding")
    code, _, err = cli(monkeypatch, capsys, *argv, "--encoding", "latin-1")
    assert code == 0, err
    tok = json.loads((out / "tokenizer.json").read_text())
    assert "\u00e9" in json.dumps(tok, ensure_ascii=False)


# ------------------------------------------------------------------ resuming


@pytest.mark.parametrize(
    "args, words",
    [
        (["--width", "64"], ["--width cannot change", "(the checkpoint has 16)"]),
        (["--width", "64", "--lr", "0.5"], ["--width, --lr", "--lr 0.001"]),
        (["--max-steps", "4"], ["already at step 6", "--max-steps 4 is not beyond"]),
        (["--max-steps", "6"], ["already at step 6"]),
        (["--force"], ["--resume", "--force"]),
        (["--no-tie-weights"], ["--tie-weights cannot change", "has True"]),
    ],
)
def test_bad_resumes_are_one_line(trained, corpus, monkeypatch, capsys, args, words):
    out, _ = trained
    before = (out / "model.safetensors").read_bytes()
    argv = ["train", "--corpus", corpus, "--out", out, "--resume", *args]
    assert_one_line_error(*cli(monkeypatch, capsys, *argv), *words)
    assert (out / "model.safetensors").read_bytes() == before


def test_resume_accepts_the_saved_values(trained, corpus, monkeypatch, capsys):
    out, _ = trained
    argv = ["train", "--corpus", corpus, "--out", out, "--resume", "--width", "16"]
    code, stdout, err = cli(monkeypatch, capsys, *argv, "--max-steps", "7")
    assert code == 0, err
    assert "resumed at step 6" in stdout


def test_generate_names_both_places_it_looked(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["generate", "nosuchname"]
    assert_one_line_error(
        *cli(monkeypatch, capsys, *argv), "nosuchname", "checkpoints/nosuchname"
    )
