"""Token-id cache: a corpus is tokenized once per (corpus text, tokenizer) pair.

The ids are stored as an int32 safetensors file named after the sha256 of the corpus
text and the sha256 of the tokenizer's JSON, so a changed corpus or a retrained
tokenizer misses the cache, and a restart of the same run does not re-tokenize.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from toytorch.tokenizers.base import Tokenizer

CACHE_ENV = "TOYTORCH_CACHE_DIR"


def default_cache_dir() -> Path:
    """``$TOYTORCH_CACHE_DIR`` if set, else ``<user cache dir>/toytorch/token-ids``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("toytorch")) / "token-ids"


def cache_key(tokenizer: Tokenizer, text: str) -> str:
    """``<sha256 of text>-<sha256 of tokenizer JSON>`` (hex, 64 + 64 characters)."""
    text_hash = hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()
    tok_hash = hashlib.sha256(tokenizer.to_json_str().encode("utf-8")).hexdigest()
    return f"{text_hash}-{tok_hash}"


def encode_cached(
    tokenizer: Tokenizer, text: str, cache_dir: str | os.PathLike | None = None
) -> torch.LongTensor:
    """``tokenizer.encode(text)`` as a LongTensor, read from the cache when present.

    A cache file that cannot be read (truncated, foreign) is ignored and rewritten; an
    unwritable cache folder only costs the caching, never the result.
    """
    import torch

    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / f"{cache_key(tokenizer, text)}.safetensors"

    ids = _read(path)
    if ids is not None:
        return ids

    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    try:
        _write(path, ids)
    except OSError:
        pass  # a read-only or full disk: the ids are still right, just not cached
    return ids


def _read(path: Path) -> torch.LongTensor | None:
    if not path.is_file():
        return None
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        ids = load_file(str(path))["ids"]
    except (SafetensorError, KeyError, OSError, ValueError):
        return None
    return ids.long() if ids.dim() == 1 else None


def _write(path: Path, ids: torch.LongTensor) -> None:
    """Write atomically: a temporary file in the same folder, then rename.

    Stored as int32 (vocabularies are far below 2**31 ids) to halve the file.
    """
    import torch
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".ids.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({"ids": ids.to(torch.int32).contiguous()}, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
