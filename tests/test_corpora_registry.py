"""The corpus registry: bundled corpora, the user's folder, file paths, safe names."""

import json
import os
from pathlib import Path

import pytest
import tomllib

import toytorch
from toytorch.corpora import (
    DEFAULT_CORPUS,
    ENV_DIR,
    check_name,
    find_bundled_dir,
    list_corpora,
    read_corpus,
    resolve_corpus,
    save_user_corpus,
    user_corpora_dir,
)
from toytorch.corpora.registry import (
    add_corpus,
    bundled_dir_candidates,
    cached_stats,
    corpus_file,
)
from toytorch.errors import ToytorchError

ROOT = Path(toytorch.__file__).resolve().parents[1]


def error_of(fn, *args, **kwargs) -> str:
    with pytest.raises(ToytorchError) as e:
        fn(*args, **kwargs)
    assert "\n" not in str(e.value)
    return str(e.value)


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    folder = tmp_path / "user-corpora"
    monkeypatch.setenv(ENV_DIR, str(folder))
    return folder


def test_default_corpus_resolves_to_the_bundled_songbook(user_dir):
    path = resolve_corpus(DEFAULT_CORPUS)

    assert path == ROOT / "corpora" / f"{DEFAULT_CORPUS}.txt"
    assert len(read_corpus(path)) > 20_000


def test_fresh_user_folder_lists_the_bundled_default(user_dir):
    infos = list_corpora()

    assert [i.name for i in infos] == [DEFAULT_CORPUS]
    (info,) = infos
    assert info.origin == "bundled"
    assert info.source == "written for toytorch"
    assert info.licence == "CC0 1.0"
    assert info.size_bytes == (ROOT / "corpora" / "songbook.txt").stat().st_size


def test_find_bundled_dir_takes_the_first_candidate_holding_the_default(tmp_path):
    source_tree = tmp_path / "site-packages" / "corpora"  # absent: non-editable install
    installed = tmp_path / "prefix" / "share" / "toytorch" / "corpora"
    installed.mkdir(parents=True)
    (installed / f"{DEFAULT_CORPUS}.txt").write_text("# Song\n\nla\n")
    empty = tmp_path / "empty"
    empty.mkdir()

    assert find_bundled_dir([source_tree, empty, installed]) == installed
    assert find_bundled_dir([source_tree, empty]) is None


def test_pip_install_puts_the_corpora_where_the_registry_looks():
    """pyproject's data-files target is one of the lookup candidates, and its globs
    cover the bundled files (so a non-editable install finds them)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    data_files = config["tool"]["setuptools"]["data-files"]
    ((target, patterns),) = data_files.items()

    suffixes = [c.parts[-3:] for c in bundled_dir_candidates()]
    assert tuple(Path(target).parts) in suffixes
    covered = {p for pattern in patterns for p in ROOT.glob(pattern)}
    assert ROOT / "corpora" / "songbook.txt" in covered
    assert ROOT / "corpora" / "songbook.meta.json" in covered


def test_user_corpora_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_DIR, str(tmp_path / "env"))
    assert user_corpora_dir(tmp_path / "flag") == tmp_path / "flag"
    assert user_corpora_dir() == tmp_path / "env"

    monkeypatch.delenv(ENV_DIR)
    import platformdirs

    expected = Path(platformdirs.user_data_dir("toytorch")) / "corpora"
    assert user_corpora_dir() == expected


def test_user_corpus_by_name_and_any_file_by_path(user_dir, tmp_path):
    save_user_corpus("mine", "# A\n\nla la\n", {"title": "Mine"})
    other = tmp_path / "elsewhere.txt"
    other.write_text("words\n")

    assert resolve_corpus("mine") == user_dir / "mine.txt"
    assert resolve_corpus(str(other)) == other
    assert [(i.name, i.origin, i.title) for i in list_corpora()] == [
        (DEFAULT_CORPUS, "bundled", "The toytorch Songbook"),
        ("mine", "user", "Mine"),
    ]


def test_unknown_name_and_missing_path(user_dir, tmp_path):
    assert error_of(resolve_corpus, "nosuch") == (
        "no corpus named 'nosuch' (see 'toytorch corpora list'), and no such file"
    )
    assert error_of(resolve_corpus, " ") == (
        "no corpus given: pass a corpus name or a file path"
    )
    missing = str(tmp_path / "gone.txt")
    assert error_of(resolve_corpus, missing) == f"corpus file '{missing}' not found"
    assert error_of(resolve_corpus, str(tmp_path)) == (
        f"corpus '{tmp_path}' is a directory, not a text file"
    )


def test_a_path_that_is_no_regular_file_is_named_so(user_dir, tmp_path):
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)

    assert error_of(resolve_corpus, str(fifo)) == (
        f"corpus '{fifo}' is not a regular file"
    )
    assert error_of(add_corpus, fifo, name="piped", user_dir=user_dir) == (
        f"corpus '{fifo}' is not a regular file"
    )
    assert error_of(resolve_corpus, "/dev/null") == (
        "corpus '/dev/null' is not a regular file"
    )


@pytest.mark.parametrize(
    "name, message",
    [
        ("", "corpus name must not be empty"),
        (
            "..",
            "corpus name '..' is not allowed: use up to 64 letters, digits, '-' "
            "and '_', starting with a letter or digit",
        ),
        ("../escape", "corpus name '../escape' must not contain a path separator"),
        ("/etc/passwd", "corpus name '/etc/passwd' must not contain a path separator"),
        ("a\\b", "corpus name 'a\\b' must not contain a path separator"),
        (
            ".hidden",
            "corpus name '.hidden' is not allowed: use up to 64 letters, "
            "digits, '-' and '_', starting with a letter or digit",
        ),
        (
            "x" * 65,
            f"corpus name '{'x' * 65}' is not allowed: use up to 64 letters, "
            "digits, '-' and '_', starting with a letter or digit",
        ),
        (
            "with space",
            "corpus name 'with space' is not allowed: use up to 64 "
            "letters, digits, '-' and '_', starting with a letter or digit",
        ),
    ],
)
def test_unsafe_names_are_refused(name, message, user_dir):
    assert error_of(check_name, name) == message
    assert error_of(save_user_corpus, name, "text\n", {}) == message


def test_safe_names_pass():
    for name in ("songbook", "my-songs_2", "A1", "x" * 64):
        assert check_name(name) == name


def test_dotdot_name_cannot_reach_a_file_beside_the_folder(
    user_dir, tmp_path, monkeypatch
):
    """'../secret' is not a name, so it is never looked up in the corpora folders (where
    it would find ../secret.txt); as a path it is relative to the working directory."""
    user_dir.mkdir()
    (user_dir.parent / "secret.txt").write_text("do not read\n")
    monkeypatch.chdir(tmp_path)

    assert error_of(resolve_corpus, "../secret") == "corpus file '../secret' not found"


def test_link_out_of_the_folder_is_refused_and_not_listed(user_dir, tmp_path):
    user_dir.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("private\n")
    (user_dir / "evil.txt").symlink_to(outside)

    assert error_of(resolve_corpus, "evil") == (
        f"corpus 'evil' in '{user_dir}' is a link to '{outside.resolve()}', outside "
        "the corpora folder"
    )
    assert "evil" not in [i.name for i in list_corpora()]
    assert error_of(save_user_corpus, "evil", "new\n", {}, force=True).startswith(
        "corpus 'evil' in "
    )
    assert outside.read_text() == "private\n"


def test_link_inside_the_folder_is_fine(user_dir):
    save_user_corpus("real", "la\n", {})
    (user_dir / "alias.txt").symlink_to(user_dir / "real.txt")

    assert corpus_file(user_dir, "alias") == user_dir / "alias.txt"
    assert read_corpus(resolve_corpus("alias")) == "la\n"


def test_save_refuses_overwrite_without_force_and_bundled_names(user_dir):
    save_user_corpus("mine", "one\n", {"title": "first"})

    assert error_of(save_user_corpus, "mine", "two\n", {}) == (
        f"corpus 'mine' already exists in '{user_dir}': pass --force to replace it"
    )
    save_user_corpus("mine", "two\n", {"title": "second"}, force=True)
    assert (user_dir / "mine.txt").read_text() == "two\n"
    assert error_of(save_user_corpus, DEFAULT_CORPUS, "x\n", {}) == (
        f"corpus name '{DEFAULT_CORPUS}' is taken by a bundled corpus"
    )
    leftovers = [p.name for p in user_dir.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_user_corpus_stats_are_cached_until_the_file_changes(user_dir, monkeypatch):
    import toytorch.corpora.registry as registry

    path = save_user_corpus("mine", "one two\n", {"title": "Mine"})
    info = next(i for i in list_corpora() if i.name == "mine")
    reads = []
    real_read = registry.read_corpus
    monkeypatch.setattr(
        registry, "read_corpus", lambda p: reads.append(p) or real_read(p)
    )

    first = cached_stats(info)
    second = cached_stats(info)
    assert (first.words, second.words) == (2, 2) and reads == [path]

    path.write_text("one two three four five\n")  # a new size: count again
    assert cached_stats(info).words == 5 and reads == [path, path]
    assert json.loads(path.with_name("mine.meta.json").read_text())["title"] == "Mine"
