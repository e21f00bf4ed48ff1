"""Where corpora live and how a name or a path becomes a file.

Three places hold corpora:

- the bundled folder, ``corpora/`` at the top of the project (an editable install), or
  ``<prefix>/share/toytorch/corpora`` where ``pip install .`` puts the same files;
- the user's folder: ``$TOYTORCH_CORPORA_DIR`` if set, else
  ``platformdirs.user_data_dir("toytorch")/corpora``; the commands' ``--dir`` wins over
  both;
- any text file, given by its path.

A corpus called NAME is the file ``NAME.txt`` in one of the folders, with an optional
``NAME.meta.json`` beside it (title, source, licence). Names are letters, digits, ``-``
and ``_`` (at most 64, starting with a letter or digit), so a name cannot point outside
its folder; a ``NAME.txt`` that is a link to a file outside the folder is refused too.
"""

from __future__ import annotations

import json
import os
import re
import site
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from toytorch.corpora.reading import CorpusStats, corpus_stats, read_corpus
from toytorch.errors import ToytorchError

DEFAULT_CORPUS = "songbook"
ENV_DIR = "TOYTORCH_CORPORA_DIR"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


@dataclass(frozen=True)
class CorpusInfo:
    """What the registry knows about one corpus without reading its text.

    Attributes:
        name: the corpus name (the file stem for a plain path).
        path: the text file.
        origin: ``"bundled"``, ``"user"`` or ``"file"``.
        title, source, licence: from ``NAME.meta.json``, or ``"unknown"``.
        size_bytes: the file's size.
    """

    name: str
    path: Path
    origin: str
    title: str
    source: str
    licence: str
    size_bytes: int


def check_name(name: str) -> str:
    """Return ``name`` if it is a safe corpus name, else raise a ToytorchError."""
    if not name:
        raise ToytorchError("corpus name must not be empty")
    if "/" in name or "\\" in name or os.sep in name:
        raise ToytorchError(f"corpus name '{name}' must not contain a path separator")
    if _NAME.fullmatch(name) is None:
        raise ToytorchError(
            f"corpus name '{name}' is not allowed: use up to 64 letters, digits, '-' "
            "and '_', starting with a letter or digit"
        )
    return name


def user_corpora_dir(override: str | os.PathLike | None = None) -> Path:
    """The user's corpora folder: ``override``, else $TOYTORCH_CORPORA_DIR, else the
    platform's user data folder (e.g. ``~/.local/share/toytorch/corpora``)."""
    if override is not None:
        return Path(override).expanduser()
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env).expanduser()
    import platformdirs  # imported here: only needed when no folder is given

    return Path(platformdirs.user_data_dir("toytorch")) / "corpora"


def bundled_dir_candidates() -> list[Path]:
    """Where the bundled corpora may be, most likely first."""
    import toytorch

    return [
        Path(toytorch.__file__).resolve().parents[1] / "corpora",  # source tree
        Path(sys.prefix) / "share" / "toytorch" / "corpora",  # pip install .
        Path(site.getuserbase()) / "share" / "toytorch" / "corpora",  # pip --user
    ]


def find_bundled_dir(candidates: list[Path] | None = None) -> Path | None:
    """The first candidate folder that holds the default corpus, or None."""
    for folder in bundled_dir_candidates() if candidates is None else candidates:
        if (folder / f"{DEFAULT_CORPUS}.txt").is_file():
            return folder
    return None


def corpus_file(folder: Path, name: str) -> Path:
    """The file of corpus ``name`` in ``folder`` (it may not exist yet).

    Raises a ToytorchError for an unsafe name, or when ``NAME.txt`` is a link that leads
    outside ``folder``.
    """
    check_name(name)
    path = folder / f"{name}.txt"
    if path.is_symlink():
        target = path.resolve()
        if not target.is_relative_to(folder.resolve()):
            raise ToytorchError(
                f"corpus '{name}' in '{folder}' is a link to '{target}', outside the "
                "corpora folder"
            )
    return path


def resolve_corpus(
    name_or_path: str, user_dir: str | os.PathLike | None = None
) -> Path:
    """The text file for a bundled corpus name, a user corpus name, or a file path.

    A name is looked up in the bundled folder, then in the user's folder (``user_dir``,
    default `user_corpora_dir()`); anything else is taken as a path to a file.
    """
    if not name_or_path.strip():
        raise ToytorchError("no corpus given: pass a corpus name or a file path")
    if _NAME.fullmatch(name_or_path):
        for folder, _ in _places(user_dir):
            path = corpus_file(folder, name_or_path)
            if path.is_file():
                return path
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise ToytorchError(f"corpus '{name_or_path}' is a directory, not a text file")
    if path.exists():  # a device, pipe or socket such as /dev/null
        raise ToytorchError(f"corpus '{name_or_path}' is not a regular file")
    if _NAME.fullmatch(name_or_path):
        raise ToytorchError(
            f"no corpus named '{name_or_path}' (see 'toytorch corpora list'), and no "
            "such file"
        )
    raise ToytorchError(f"corpus file '{name_or_path}' not found")


def corpus_info(path: Path, origin: str = "file") -> CorpusInfo:
    """Describe the corpus file ``path`` from its ``.meta.json`` (if any) and size."""
    meta = read_meta(path)
    return CorpusInfo(
        name=path.stem,
        path=path,
        origin=origin,
        title=str(meta.get("title", path.stem)),
        source=str(meta.get("source", "unknown")),
        licence=str(meta.get("licence", "unknown")),
        size_bytes=path.stat().st_size,
    )


def list_corpora(user_dir: str | os.PathLike | None = None) -> list[CorpusInfo]:
    """Every bundled corpus, then every corpus in the user's folder, each by name.

    Files in the folders whose stem is not a safe name, and links out, are left out.
    """
    found: list[CorpusInfo] = []
    seen: set[str] = set()
    for folder, origin in _places(user_dir):
        for path in sorted(folder.glob("*.txt")):
            if path.stem in seen or not _listable(folder, path):
                continue
            seen.add(path.stem)
            found.append(corpus_info(path, origin))
    return found


def cached_stats(info: CorpusInfo) -> CorpusStats:
    """The statistics of a corpus, cached for user corpora in ``NAME.meta.json``.

    The cache is keyed by the file's size and modification time, so an edited file is
    counted again. Bundled corpora are small and their folder may be read-only: they
    are counted each time.
    """
    stat = info.path.stat()
    key = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    meta = read_meta(info.path)
    cached = meta.get("stats")
    if isinstance(cached, dict) and cached.get("key") == key:
        try:
            return CorpusStats(**cached["counts"])
        except (KeyError, TypeError):
            pass  # a cache from another version: count again
    stats = corpus_stats(read_corpus(info.path))
    if info.origin == "user":
        meta["stats"] = {"key": key, "counts": asdict(stats)}
        try:
            _write_meta(info.path, meta)
        except OSError:
            pass  # a read-only folder just goes without the cache
    return stats


def meta_path(path: Path) -> Path:
    """``NAME.meta.json`` beside ``NAME.txt``."""
    return path.with_name(path.stem + ".meta.json")


def read_meta(path: Path) -> dict:
    """The metadata beside a corpus file; an absent or unreadable file gives {}."""
    try:
        meta = json.loads(meta_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def add_corpus(
    src: str | os.PathLike,
    name: str | None = None,
    encoding: str | None = None,
    force: bool = False,
    user_dir: str | os.PathLike | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Copy the text file ``src`` into the user's folder as corpus ``name``.

    The name defaults to the file's stem. The text is checked and decoded by
    `read_corpus` (``encoding`` and ``progress`` as there) and stored as UTF-8 with LF
    newlines.
    """
    src = Path(src)
    if name is None:
        name = _name_from_file(src)
    check_name(name)
    text = read_corpus(src, encoding=encoding, progress=progress)
    meta = {
        "title": name,
        "source": f"added from {src.resolve()}",
        "licence": "unknown (your own file)",
    }
    return save_user_corpus(name, text, meta, user_dir=user_dir, force=force)


def _name_from_file(path: Path) -> str:
    """The file's stem, when it is a safe name; otherwise ask for --name."""
    try:
        return check_name(path.stem)
    except ToytorchError:
        raise ToytorchError(
            f"'{path.stem}' (from '{path}') is not a usable corpus name: pass --name "
            "with letters, digits, '-' and '_'"
        ) from None


def save_user_corpus(
    name: str,
    text: str,
    meta: dict,
    user_dir: str | os.PathLike | None = None,
    force: bool = False,
) -> Path:
    """Write ``text`` (UTF-8, LF) and its metadata as corpus ``name`` in the user's
    folder.

    Refuses a bundled corpus's name, and an existing corpus unless ``force``. Each file
    is written to a temporary file and renamed, so a crash leaves no half-written
    corpus.
    """
    folder = user_corpora_dir(user_dir)
    path = corpus_file(folder, name)
    bundled = find_bundled_dir()
    if bundled is not None and (bundled / f"{name}.txt").is_file():
        raise ToytorchError(f"corpus name '{name}' is taken by a bundled corpus")
    if path.exists() and not force:
        raise ToytorchError(
            f"corpus '{name}' already exists in '{folder}': pass --force to replace it"
        )
    folder.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        path.unlink()  # replace the link itself, never the file it points to
    write_atomic(path, text.encode("utf-8"))
    _write_meta(path, meta)
    return path


def _write_meta(path: Path, meta: dict) -> None:
    write_atomic(meta_path(path), (json.dumps(meta, indent=2) + "\n").encode("utf-8"))


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _places(user_dir: str | os.PathLike | None) -> list[tuple[Path, str]]:
    """The folders to search, in order, each with its origin label."""
    places = [(user_corpora_dir(user_dir), "user")]
    bundled = find_bundled_dir()
    if bundled is not None:
        places.insert(0, (bundled, "bundled"))
    return places


def _listable(folder: Path, path: Path) -> bool:
    if _NAME.fullmatch(path.stem) is None:
        return False
    try:
        corpus_file(folder, path.stem)
    except ToytorchError:
        return False
    return path.is_file()
