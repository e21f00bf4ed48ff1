"""The one tokenizer interface that every front end uses: char, word and BPE.

A tokenizer turns text into integer ids and back. Besides ``encode`` and ``decode`` it
can ``stream`` ids as text pieces (for live generation), report the parts of a text that
its vocabulary lacks (``unknown``), and save itself as a ``tokenizer.json``.
"""

from __future__ import annotations

import codecs
import json
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path

from toytorch.errors import ToytorchError
from toytorch.tokenizers.pretokenize import SpecialSplitter

JSON_VERSION = 1  # of toytorch's own tokenizer.json schema (char and word)


class Tokenizer(ABC):
    """Base class: maps text to ids and ids to text.

    Subclasses give ``kind``, ``vocab_size``, ``encode``, ``token_bytes``, ``unknown``
    and ``to_json_str``; decoding and streaming are built here on ``token_bytes``, so
    that ids whose bytes are not valid UTF-8 (a lone continuation byte, half an emoji)
    decode to U+FFFD instead of raising.

    Attributes:
        kind: ``"char"``, ``"word"`` or ``"bpe"``.
    """

    kind: str

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of ids, special tokens included."""

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Ids of ``text``; a ToytorchError if the vocabulary cannot represent it."""

    @abstractmethod
    def token_bytes(self, token_id: int) -> bytes:
        """The UTF-8 bytes that one id stands for (may be part of a character)."""

    @abstractmethod
    def unknown(self, text: str) -> list[str]:
        """Distinct characters or words of ``text`` the vocabulary lacks, in order."""

    @abstractmethod
    def to_json_str(self) -> str:
        """The tokenizer as the text of a ``tokenizer.json``."""

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``; invalid UTF-8 becomes U+FFFD."""
        data = b"".join(self.token_bytes(int(i)) for i in ids)  # int(): tensors too
        return data.decode("utf-8", errors="replace")

    def stream(self, ids: Iterable[int]) -> Iterator[str]:
        """Yield text pieces for ``ids`` as they arrive, never splitting a character.

        Bytes of a character that is not yet complete are held back until the id that
        completes it arrives; the pieces joined equal ``decode(ids)``. Bytes that no
        later id can complete (a lone continuation byte, a character cut off at the
        end) become U+FFFD, as in ``decode``: a barely trained byte-level model emits
        such sequences, so its samples show "\ufffd" until it has learnt UTF-8.
        """
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        for i in ids:
            piece = decoder.decode(self.token_bytes(int(i)))
            if piece:
                yield piece
        tail = decoder.decode(b"", final=True)
        if tail:
            yield tail

    def token_str(self, token_id: int) -> str:
        """One token shown readably: its text, with bytes that are not whole UTF-8
        characters (part of an emoji, say) written as ``<0xC3>``."""
        text = self.token_bytes(int(token_id)).decode("utf-8", errors="surrogateescape")
        return "".join(
            f"<0x{ord(ch) - 0xDC00:02X}>" if 0xDC80 <= ord(ch) <= 0xDCFF else ch
            for ch in text
        )

    @property
    def start_id(self) -> int:
        """Id to start generation from when the prompt is empty.

        The id of the token for a newline ("\\n") when a newline is one token (so the
        model starts as if at the beginning of a line); otherwise 0.
        """
        if self.unknown("\n"):
            return 0
        ids = self.encode("\n")
        return ids[0] if len(ids) == 1 else 0

    def save(self, path: str | os.PathLike) -> None:
        """Write ``tokenizer.json`` to ``path`` atomically (temporary file, rename)."""
        write_text_atomic(Path(path), self.to_json_str())

    def _check_id(self, token_id: int) -> None:
        if not 0 <= token_id < self.vocab_size:
            raise ToytorchError(
                f"token id {token_id} is outside the vocabulary "
                f"(0..{self.vocab_size - 1})"
            )


class VocabTokenizer(Tokenizer):
    """Base of the tokenizers whose vocabulary is a plain list of tokens (char, word).

    Holds the vocabulary, the token -> id map, the special-token splitter and each
    token's bytes, and reads and writes toytorch's own tokenizer.json schema
    (``{"toytorch": {"version", "kind", ..., "special_tokens", "vocab"}}``).

    Args:
        vocab: tokens in id order.
        special_tokens: the tokens of ``vocab`` that are special (kept whole by encode).
    """

    def __init__(self, vocab: list[str], special_tokens: Iterable[str] = ()) -> None:
        self.vocab = list(vocab)
        self.special_tokens = list(special_tokens)
        self.stoi = {s: i for i, s in enumerate(self.vocab)}
        if len(self.stoi) != len(self.vocab):
            raise ToytorchError(f"{self.kind} vocabulary has duplicate tokens")
        self._splitter = SpecialSplitter(self.special_tokens)
        self._bytes = [s.encode("utf-8") for s in self.vocab]

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def token_bytes(self, token_id: int) -> bytes:
        self._check_id(token_id)
        return self._bytes[token_id]

    @abstractmethod
    def _pieces(self, segment: str) -> Iterable[str]:
        """The tokens of a text segment that holds no special token."""

    def unknown(self, text: str) -> list[str]:
        stoi = self.stoi
        missing: dict[str, None] = {}  # an ordered set
        for segment, special in self._splitter.split(text):
            if not special:  # special tokens are always in the vocabulary
                missing.update(
                    (p, None) for p in self._pieces(segment) if p not in stoi
                )
        return list(missing)

    def _json_fields(self) -> dict:
        """Fields a subclass adds to the schema, written after ``kind``."""
        return {}

    def to_json_str(self) -> str:
        payload = {
            "toytorch": {
                "version": JSON_VERSION,
                "kind": self.kind,
                **self._json_fields(),
                "special_tokens": self.special_tokens,
                "vocab": self.vocab,
            }
        }
        return json.dumps(payload, ensure_ascii=False, indent=1)

    @classmethod
    def from_json_dict(cls, d: dict):
        """Inverse of ``to_json_str`` (the inner ``"toytorch"`` object)."""
        return cls(d["vocab"], d.get("special_tokens", []))


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` as UTF-8 to ``path`` so a reader sees the old or the new file.

    An OS failure (``path`` is a folder, a parent is a file, no permission, disk
    full) becomes a one-line ToytorchError naming ``path``.
    """
    if path.is_dir():  # os.replace would fail with a less clear message
        raise ToytorchError(f"cannot write {path}: is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
        )
    except FileExistsError as e:  # mkdir met a file where a folder should be
        raise ToytorchError(f"cannot write {path}: {e.filename} is not a folder") from e
    except OSError as e:
        raise ToytorchError(f"cannot write {path}: {_reason(e)}") from e
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise ToytorchError(f"cannot write {path}: {_reason(e)}") from e
        raise


def _reason(e: OSError) -> str:
    """The OS's words for an error ("is a directory"), lower-cased, without a path."""
    return (e.strerror or str(e)).lower()


def as_text_list(texts: str | Iterable[str]) -> Iterator[str]:
    """Iterate over ``texts``: one string, or an iterable of strings."""
    if isinstance(texts, str):
        yield texts
        return
    for t in texts:
        if not isinstance(t, str):
            raise ToytorchError(
                f"training texts must be strings, got {type(t).__name__}"
            )
        yield t
