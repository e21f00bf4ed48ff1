"""Scratch byte-pair encoder that agrees exactly with Hugging Face ``tokenizers``.

Two modes:

- ``"byte"`` (GPT-2 style, the default): text is split with GPT-2's pattern, each piece
  is turned into byte characters (see ``pretokenize``), and merges are learned on those.
  Every string encodes, with no unknown token, and ``decode(encode(x)) == x``.
  Matches ``models.BPE()`` + ``pre_tokenizers.ByteLevel(add_prefix_space=False)`` +
  ``decoders.ByteLevel()`` trained with ``BpeTrainer(initial_alphabet=
  ByteLevel.alphabet())``: the same vocabulary, merges and ids.
- ``"suffix"`` (the classic scheme): words and punctuation runs (whitespace dropped),
  characters plus an end-of-word marker ``</w>`` on the last one, ``<unk>`` for
  characters never seen. Decoding joins words with single spaces, so it is lossy.

Example (byte mode): trained on "low lower lowest" with room for two merges, the
first merges are ("l", "o") then ("lo", "w"), and ``encode("low")`` is the one id of
"low". The merge rules are stated in ``bpe_train``. Saved files are tokenizer.json in
Hugging Face's format, loadable by ``tokenizers.Tokenizer.from_file``.
"""

from __future__ import annotations

import heapq
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from toytorch.errors import ToytorchError
from toytorch.tokenizers.base import Tokenizer, as_text_list
from toytorch.tokenizers.bpe_hf import from_hf_dict, to_hf_dict
from toytorch.tokenizers.bpe_train import learn_merges
from toytorch.tokenizers.pretokenize import (
    BYTE_TO_CHAR,
    CHAR_TO_BYTE,
    GPT2_SPLIT,
    WHITESPACE_SPLIT,
    SpecialSplitter,
    to_byte_chars,
)

MODES = ("byte", "suffix")
SUFFIX = "</w>"
UNK = "<unk>"
_CACHE_LIMIT = 200_000  # pre-tokens kept in the encode cache before it is cleared


class BPETokenizer(Tokenizer):
    """Byte-pair encoder: a vocabulary (token -> id) and ranked merges.

    Args:
        vocab: token string -> id (byte mode: strings of byte characters).
        merges: pairs of token strings, best (earliest learned) first.
        mode: ``"byte"`` or ``"suffix"``.
        special_tokens: tokens matched whole in the text before any splitting.
        unk_token: id given to unknown characters (suffix mode); None drops them.
        end_of_word_suffix: marker on a word's last character (suffix mode).
        add_prefix_space: byte mode: put a space before text that lacks one.
        use_regex: byte mode: split with GPT-2's pattern (else each segment whole).
        ignore_merges: a pre-token that is itself in the vocabulary is one token.

    Attributes:
        ranks: ``(left id, right id) -> (rank, merged id)``.
    """

    kind = "bpe"

    def __init__(
        self,
        vocab: dict[str, int],
        merges: list[tuple[str, str]],
        mode: str = "byte",
        special_tokens: Iterable[str] = (),
        unk_token: str | None = None,
        end_of_word_suffix: str | None = None,
        add_prefix_space: bool = False,
        use_regex: bool = True,
        ignore_merges: bool = False,
    ) -> None:
        if mode not in MODES:
            raise ToytorchError(f"unknown BPE mode {mode!r}: use one of {MODES}")
        self.mode = mode
        self.vocab = dict(vocab)
        self.merges = [tuple(m) for m in merges]
        self.special_tokens = list(dict.fromkeys(special_tokens))
        self.unk_token = unk_token
        self.end_of_word_suffix = end_of_word_suffix
        self.add_prefix_space = add_prefix_space
        self.use_regex = use_regex
        self.ignore_merges = ignore_merges
        self._build_tables()

    def _build_tables(self) -> None:
        for s in self.special_tokens:
            self.vocab.setdefault(s, max(self.vocab.values(), default=-1) + 1)
        self.id_to_token = {i: t for t, i in self.vocab.items()}
        if self.unk_token is not None and self.unk_token not in self.vocab:
            raise ToytorchError(
                f"unk_token {self.unk_token!r} is not in the vocabulary"
            )
        self.ranks: dict[tuple[int, int], tuple[int, int]] = {}
        for rank, (a, b) in enumerate(self.merges):
            try:
                ids = (self.vocab[a], self.vocab[b])
                merged = self.vocab[a + b]
            except KeyError as e:
                raise ToytorchError(
                    f"merge {a!r} {b!r} uses token {e.args[0]!r} missing from the vocab"
                ) from None
            self.ranks[ids] = (rank, merged)
        self._splitter = SpecialSplitter(self.special_tokens)
        self._special_set = set(self.special_tokens)
        self._cache: dict[str, list[int]] = {}
        self._bytes_cache: dict[int, bytes] = {}

    # ------------------------------------------------------------------ training

    @classmethod
    def train(
        cls,
        texts: str | Iterable[str],
        vocab_size: int,
        min_frequency: int = 0,
        special_tokens: Iterable[str] = (),
        mode: str = "byte",
        progress: Callable[[int, int], None] | None = None,
    ) -> BPETokenizer:
        """Learn merges from ``texts`` (one string, or an iterable of strings).

        Each string is pre-tokenized on its own, as ``Tokenizer.train_from_iterator``
        does, so a pre-token never spans two strings. Special tokens get the first
        ids and are matched whole when encoding; in training text they are ordinary
        text, as in tokenizers.
        """
        if mode not in MODES:
            raise ToytorchError(f"unknown BPE mode {mode!r}: use one of {MODES}")
        if not isinstance(vocab_size, int) or vocab_size < 1:
            raise ToytorchError(
                f"vocab_size must be a positive integer, got {vocab_size!r}"
            )
        specials = list(dict.fromkeys(special_tokens))
        SpecialSplitter(specials)  # refuses empty special tokens before training
        if mode == "suffix" and UNK not in specials:
            specials.insert(0, UNK)

        word_counts = _count_pre_tokens(texts, mode)
        if not word_counts:
            raise ToytorchError("cannot train a BPE tokenizer on an empty corpus")

        id_to_token, words = _initial_vocab(word_counts, specials, mode)
        if vocab_size < len(id_to_token):
            raise ToytorchError(
                f"vocab_size {vocab_size} is too small: the alphabet and special "
                f"tokens already take {len(id_to_token)} ids"
            )
        counts = list(word_counts.values())
        merges = learn_merges(
            words, counts, id_to_token, vocab_size, min_frequency, progress
        )
        vocab = {t: i for i, t in enumerate(id_to_token)}
        if mode == "byte":
            return cls(vocab, merges, "byte", specials)
        return cls(vocab, merges, "suffix", specials, UNK, SUFFIX)

    # ------------------------------------------------------------------ encoding

    @property
    def vocab_size(self) -> int:
        return max(self.id_to_token) + 1 if self.id_to_token else 0

    def encode(self, text: str) -> list[int]:
        """Ids of ``text``: special tokens whole, the rest split and merged."""
        ids: list[int] = []
        for segment, special in self._splitter.split(text):
            if special:
                ids.append(self.vocab[segment])
            else:
                self._encode_segment(segment, ids)
        return ids

    def _encode_segment(self, text: str, out: list[int]) -> None:
        """Append the ids of ``text`` (no special tokens in it) to ``out``."""
        if self.mode == "byte":
            if self.add_prefix_space and not text.startswith(" "):
                text = " " + text
            pieces = GPT2_SPLIT.findall(text) if self.use_regex else [text]
        else:
            pieces = WHITESPACE_SPLIT.findall(text)
        cache = self._cache
        if len(cache) > _CACHE_LIMIT:
            cache.clear()
        for piece in pieces:
            ids = cache.get(piece)
            if ids is None:
                ids = cache[piece] = self._encode_piece(piece)
            out.extend(ids)

    def _encode_piece(self, piece: str) -> list[int]:
        """Ids of one pre-token: its symbols, then merges by rank."""
        if self.mode == "byte":
            word = to_byte_chars(piece)
            if self.ignore_merges and word in self.vocab:
                return [self.vocab[word]]
            get = self.vocab.get
            return merge_symbols(
                [i for i in map(get, word) if i is not None], self.ranks
            )
        return merge_symbols(self._suffix_symbols(piece), self.ranks)

    def _suffix_symbols(self, piece: str) -> list[int]:
        """Characters of a word, the last with the marker; unknown ones -> unk."""
        if self.ignore_merges and piece + (self.end_of_word_suffix or "") in self.vocab:
            return [self.vocab[piece + (self.end_of_word_suffix or "")]]
        unk = self.vocab.get(self.unk_token) if self.unk_token is not None else None
        ids: list[int] = []
        last = len(piece) - 1
        for k, c in enumerate(piece):
            if k == last and self.end_of_word_suffix:
                c += self.end_of_word_suffix
            i = self.vocab.get(c)
            if i is None:
                i = unk
            if i is not None:
                ids.append(i)
        return ids

    def unknown(self, text: str) -> list[str]:
        """Byte mode: always empty. Suffix mode: characters the vocabulary lacks."""
        if self.mode == "byte":
            return []
        suffix = self.end_of_word_suffix or ""
        missing: dict[str, None] = {}
        for segment, special in self._splitter.split(text):
            if special:
                continue
            for c in dict.fromkeys("".join(WHITESPACE_SPLIT.findall(segment))):
                if c not in self.vocab and c + suffix not in self.vocab:
                    missing[c] = None
        return list(missing)

    # ------------------------------------------------------------------ decoding

    def token_bytes(self, token_id: int) -> bytes:
        """Bytes of one id; suffix mode turns the end-of-word marker into a space."""
        b = self._bytes_cache.get(token_id)
        if b is None:
            b = self._bytes_cache[token_id] = self._token_bytes(token_id)
        return b

    def _token_bytes(self, token_id: int) -> bytes:
        token = self.id_to_token.get(token_id)
        if token is None:
            self._check_id(token_id)
            raise ToytorchError(f"token id {token_id} is not in the vocabulary")
        if token in self._special_set:
            return token.encode("utf-8")
        if self.mode == "byte":
            # like tokenizers' ByteLevel decoder: a token holding any character
            # outside the byte alphabet stands for its own UTF-8 text
            if all(c in CHAR_TO_BYTE for c in token):
                return bytes(CHAR_TO_BYTE[c] for c in token)
            return token.encode("utf-8")
        if self.end_of_word_suffix:
            token = token.replace(self.end_of_word_suffix, " ")
        return token.encode("utf-8")

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``; bad UTF-8 gives U+FFFD. Suffix mode drops the last space."""
        text = super().decode(ids)
        if self.mode == "suffix" and text.endswith(" "):
            text = text[:-1]
        return text

    def stream(self, ids: Iterable[int]) -> Iterator[str]:
        """As ``Tokenizer.stream``; suffix mode holds a word's space until the next."""
        if self.mode == "byte":
            yield from super().stream(ids)
            return
        held = False
        for piece in super().stream(ids):
            if held:
                piece = " " + piece
            held = piece.endswith(" ")
            if held:
                piece = piece[:-1]
            if piece:
                yield piece

    # ------------------------------------------------------------------ files

    def to_json_str(self) -> str:
        return json.dumps(to_hf_dict(self), ensure_ascii=False, indent=2)

    @classmethod
    def from_hf_dict(cls, d: dict) -> BPETokenizer:
        """A tokenizer from a parsed Hugging Face tokenizer.json (model type BPE)."""
        return cls(**from_hf_dict(d))

    @classmethod
    def load(cls, path: str | Path) -> BPETokenizer:
        """Read a tokenizer.json written by ``save`` or by Hugging Face tokenizers."""
        from toytorch.tokenizers import load_tokenizer

        tok = load_tokenizer(path)
        if not isinstance(tok, cls):
            raise ToytorchError(f"{path} holds a {tok.kind} tokenizer, not BPE")
        return tok


def merge_symbols(
    ids: list[int], ranks: dict[tuple[int, int], tuple[int, int]]
) -> list[int]:
    """Apply merges to one pre-token, lowest rank first, leftmost first on ties.

    The same procedure as tokenizers' ``Word::merge_all``: a heap of (rank, position)
    over a linked list of symbols; an entry whose pair has changed since it was pushed
    is skipped.
    """
    n = len(ids)
    if n < 2:
        return ids
    sym = list(ids)
    nxt = list(range(1, n + 1))
    nxt[-1] = -1
    prv = list(range(-1, n - 1))
    alive = [True] * n
    heap = []
    for i in range(n - 1):
        m = ranks.get((sym[i], sym[i + 1]))
        if m is not None:
            heap.append((m[0], i, m[1]))
    heapq.heapify(heap)

    while heap:
        _, pos, new_id = heapq.heappop(heap)
        right = nxt[pos]
        if not alive[pos] or right == -1:
            continue
        m = ranks.get((sym[pos], sym[right]))
        if m is None or m[1] != new_id:
            continue  # expired entry: the pair at pos has changed

        # merge right into pos and unlink it
        sym[pos] = new_id
        alive[right] = False
        after = nxt[right]
        nxt[pos] = after
        if after != -1:
            prv[after] = pos

        # the two pairs the merge formed
        before = prv[pos]
        if before != -1 and (m := ranks.get((sym[before], new_id))) is not None:
            heapq.heappush(heap, (m[0], before, m[1]))
        if after != -1 and (m := ranks.get((new_id, sym[after]))) is not None:
            heapq.heappush(heap, (m[0], pos, m[1]))

    return [s for s, a in zip(sym, alive, strict=True) if a]


def _count_pre_tokens(texts: str | Iterable[str], mode: str) -> Counter[str]:
    """Distinct pre-tokens of all texts and their counts (each text split alone)."""
    split = GPT2_SPLIT.findall if mode == "byte" else WHITESPACE_SPLIT.findall
    counts: Counter[str] = Counter()
    for t in as_text_list(texts):
        counts.update(split(t))
    return counts


def _initial_vocab(
    word_counts: Counter[str], specials: list[str], mode: str
) -> tuple[list[str], list[list[int]]]:
    """Specials, then the alphabet by code point (then marked last characters)."""
    id_to_token = list(specials)
    seen = set(specials)

    if mode == "byte":
        alphabet = sorted(BYTE_TO_CHAR.values())
        words_str = [to_byte_chars(w) for w in word_counts]
    else:
        alphabet = sorted(set("".join(word_counts)))
        words_str = list(word_counts)
    for c in alphabet:
        if c not in seen:
            id_to_token.append(c)
            seen.add(c)

    if mode == "suffix":
        marked = sorted({w[-1] for w in words_str})
        for c in marked:
            if c + SUFFIX not in seen:
                id_to_token.append(c + SUFFIX)
                seen.add(c + SUFFIX)

    token_to_id = {t: i for i, t in enumerate(id_to_token)}
    if mode == "byte":
        words = [[token_to_id[c] for c in w] for w in words_str]
    else:
        words = [
            [token_to_id[c] for c in w[:-1]] + [token_to_id[w[-1] + SUFFIX]]
            for w in words_str
        ]
    return id_to_token, words
