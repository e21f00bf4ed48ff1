"""``toytorch corpora list|show|add`` through the real app."""

import sys

import pytest
from typer.testing import CliRunner

from toytorch.cli.main import app, main
from toytorch.corpora import DEFAULT_CORPUS, ENV_DIR, save_user_corpus
from toytorch.errors import ToytorchError

runner = CliRunner()


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    folder = tmp_path / "empty-corpora"
    folder.mkdir()
    monkeypatch.setenv(ENV_DIR, str(folder))
    monkeypatch.setenv("COLUMNS", "200")
    return folder


def run_main(monkeypatch, capsys, *args) -> tuple[int, str]:
    """Run ``toytorch ARGS`` as the console script does; (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", ["toytorch", *args])
    with pytest.raises(SystemExit) as e:
        main()
    return e.value.code, capsys.readouterr().err


def test_list_on_a_fresh_install_shows_the_bundled_default(user_dir):
    result = runner.invoke(app, ["corpora", "list"])

    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if DEFAULT_CORPUS in line)
    assert "bundled" in row and "The toytorch Songbook" in row and "CC0" in row
    assert f"your corpora folder: {user_dir}" in result.output


def test_titles_are_shown_literally_not_as_markup(user_dir):
    save_user_corpus("odd", "la\n", {"title": "[red]Odd[/red]", "licence": "[b]"})

    result = runner.invoke(app, ["corpora", "list"])

    row = next(line for line in result.output.splitlines() if "odd" in line)
    assert "[red]Odd[/red]" in row and "[b]" in row


def test_show_prints_statistics_and_first_lines(user_dir):
    result = runner.invoke(app, ["corpora", "show", DEFAULT_CORPUS, "--lines", "3"])

    assert result.exit_code == 0, result.output
    for key in ("source", "written for toytorch", "distinct words", "songs"):
        assert key in result.output
    assert "# The Lamplighter's Round\n\nI climb the ladder" in result.output


def test_show_and_list_print_text_literally_no_emoji_no_markup(user_dir):
    text = "root:x:0:0 [red]alert[/red] :smile:\nsecond line\n"
    save_user_corpus("odd", text, {"title": "Odd :x: [red]title[/red]"})

    shown = runner.invoke(app, ["corpora", "show", "odd", "--lines", "1"])
    listed = runner.invoke(app, ["corpora", "list"])

    assert shown.exit_code == 0, shown.output
    assert "root:x:0:0 [red]alert[/red] :smile:" in shown.output
    assert "Odd :x: [red]title[/red]" in shown.output
    row = next(line for line in listed.output.splitlines() if "odd" in line)
    assert "Odd :x: [red]title[/red]" in row
    for output in (shown.output, listed.output):
        assert "\u274c" not in output and "\U0001f604" not in output  # ❌, 😄


def test_add_copies_normalised_text_into_the_user_folder(user_dir, tmp_path):
    src = tmp_path / "my songs.txt"
    src.write_bytes("caf\u00e9 one\r\ntwo\r\n".encode("latin-1"))

    result = runner.invoke(
        app, ["corpora", "add", str(src), "--name", "cafe", "--encoding", "latin-1"]
    )

    assert result.exit_code == 0, result.output
    assert (user_dir / "cafe.txt").read_bytes() == "caf\u00e9 one\ntwo\n".encode()
    listing = runner.invoke(app, ["corpora", "list"])
    assert any("cafe" in r and "user" in r for r in listing.output.splitlines())


def test_add_default_name_is_the_file_stem_and_dir_flag_wins(user_dir, tmp_path):
    src = tmp_path / "ballads.txt"
    src.write_text("la la\n")
    other = tmp_path / "flag-folder"

    result = runner.invoke(app, ["corpora", "add", str(src), "--dir", str(other)])

    assert result.exit_code == 0, result.output
    assert (other / "ballads.txt").read_text() == "la la\n"
    assert not (user_dir / "ballads.txt").exists()


def test_large_file_is_read_with_a_progress_bar(user_dir, tmp_path, monkeypatch):
    import toytorch.cli.corpora as cli

    src = tmp_path / "long.txt"
    src.write_text("la la la la\n" * 10)
    with cli.reading_bar(src) as progress:
        assert progress is None  # small: no bar

    monkeypatch.setattr(cli, "BAR_BYTES", 10)
    with cli.reading_bar(src) as progress:
        assert callable(progress)
        assert cli.read_corpus(src, progress=progress) == "la la la la\n" * 10

    result = runner.invoke(app, ["corpora", "add", str(src)])
    assert result.exit_code == 0, result.output


def test_add_refuses_overwrite_unless_forced(user_dir, tmp_path):
    src = tmp_path / "ballads.txt"
    src.write_text("one\n")
    runner.invoke(app, ["corpora", "add", str(src)])
    src.write_text("two\n")

    again = runner.invoke(app, ["corpora", "add", str(src)])
    assert isinstance(again.exception, ToytorchError)
    assert str(again.exception) == (
        f"corpus 'ballads' already exists in '{user_dir}': pass --force to replace it"
    )

    forced = runner.invoke(app, ["corpora", "add", str(src), "--force"])
    assert forced.exit_code == 0 and (user_dir / "ballads.txt").read_text() == "two\n"


def test_add_stem_that_is_not_a_name_asks_for_name(user_dir, tmp_path):
    src = tmp_path / "my songs.txt"
    src.write_text("la\n")

    result = runner.invoke(app, ["corpora", "add", str(src)])

    assert str(result.exception) == (
        f"'my songs' (from '{src}') is not a usable corpus name: pass --name with "
        "letters, digits, '-' and '_'"
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["corpora", "show", "nosuch"],
            "error: no corpus named 'nosuch' (see 'toytorch corpora list'), and no "
            "such file",
        ),
        (
            ["corpora", "add", "PLACEHOLDER_BINARY"],
            "error: corpus 'PLACEHOLDER_BINARY' looks like a binary file (it holds NUL "
            "bytes), not text",
        ),
        (
            ["corpora", "add", "PLACEHOLDER_BINARY", "--name", "../up"],
            "error: corpus name '../up' must not contain a path separator",
        ),
        (
            ["corpora", "fetch", "nope"],
            "error: no catalogue entry named 'nope': choose one of ",
        ),
    ],
    ids=["unknown-name", "binary", "unsafe-name", "unknown-entry"],
)
def test_bad_input_is_one_line_on_stderr_and_exit_1(
    user_dir, tmp_path, monkeypatch, capsys, args, message
):
    binary = tmp_path / "photo.jpg"
    binary.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00")
    args = [str(binary) if a == "PLACEHOLDER_BINARY" else a for a in args]
    message = message.replace("PLACEHOLDER_BINARY", str(binary))

    code, err = run_main(monkeypatch, capsys, *args)

    assert code == 1
    assert err.startswith(message) and err.count("\n") == 1
    assert "Traceback" not in err
