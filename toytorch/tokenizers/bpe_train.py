"""The BPE merge loop, written to give exactly the merges of Hugging Face tokenizers.

The rules, as tokenizers' ``BpeTrainer`` applies them (tokenizers/src/models/bpe/
trainer.rs, ``do_train``, ``compute_alphabet``, ``tokenize_words``; word.rs ``merge``):

1. Ids: the special tokens first, in the order given (a repeat is skipped); then the
   alphabet; then one id per new token, in the order the merges create them. A merge
   whose result is a string already in the vocabulary reuses that id.
2. Alphabet: every character of the pre-tokenized words plus the initial alphabet (all
   256 byte characters in byte-level mode), sorted by code point. (tokenizers can also
   drop the rarest characters with ``limit_alphabet``; toytorch never sets it.)
3. In word-suffix mode each word's last character carries the end-of-word marker
   ("e" -> "e</w>"); those marked characters get ids after the alphabet. tokenizers adds
   them in its hash-map order of the words, which differs between runs, so toytorch
   uses code-point order: the merges and encodings agree, those ids need not.
4. Counts: a word counts once per occurrence in the pre-tokenized texts; min_frequency
   does not filter words, it stops the merging once the best pair is rarer than it.
5. The best pair is the one with the highest count; among pairs of equal count, the
   smallest pair of ids (compared as (left id, right id)). That is a total order on
   ids, not on hash order, so the result is the same whatever PYTHONHASHSEED.
6. Merging a pair in a word goes left to right over non-overlapping occurrences
   ("aaa" + (a, a) -> "aa a").
7. Pair counts are kept incrementally: a merge visits only the words recorded for the
   popped heap entry and adds the count changes of the neighbouring pairs. Heap
   entries are lazily corrected: an entry whose count is stale is pushed back with the
   current count. Each entry carries the set of words where its pair was formed when
   it was pushed, as in tokenizers; that quirk is kept because it decides which words
   a (rare) repeated merge touches.
8. Training stops at vocab_size tokens, when no pair is left, or at min_frequency. If
   the same pair is merged twice (possible through 7), the merge list keeps its last
   position only, as tokenizers' saved merges do.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from itertools import count as counter

# (left id, right id)
Pair = tuple[int, int]


def merge_word(word: list[int], a: int, b: int, new_id: int) -> list[tuple[Pair, int]]:
    """Merge every (a, b) in ``word`` in place, left to right; return pair changes.

    Example: ``[a, b, a, b]`` -> ``[X, X]`` and the changes ``(b, a) -1``,
    ``(X, a) +1``, ``(X, a) -1``, ``(X, X) +1``.
    """
    changes: list[tuple[Pair, int]] = []
    i = 0
    while i < len(word) - 1:
        if word[i] == a and word[i + 1] == b:
            if i > 0:
                prev = word[i - 1]
                changes.append(((prev, a), -1))
                changes.append(((prev, new_id), 1))
            word[i : i + 2] = [new_id]
            if i < len(word) - 1:
                nxt = word[i + 1]
                changes.append(((b, nxt), -1))
                changes.append(((new_id, nxt), 1))
        i += 1
    return changes


def count_pairs(
    words: list[list[int]], counts: list[int]
) -> tuple[dict[Pair, int], dict[Pair, set[int]]]:
    """Occurrences of every adjacent pair (weighted by word count), and where."""
    pair_counts: dict[Pair, int] = {}
    where: dict[Pair, set[int]] = {}
    for i, (word, n) in enumerate(zip(words, counts, strict=True)):
        for pair in zip(word, word[1:], strict=False):
            pair_counts[pair] = pair_counts.get(pair, 0) + n
            s = where.get(pair)
            if s is None:
                where[pair] = {i}
            else:
                s.add(i)
    return pair_counts, where


def learn_merges(
    words: list[list[int]],
    counts: list[int],
    id_to_token: list[str],
    vocab_size: int,
    min_frequency: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> list[tuple[str, str]]:
    """Run the merge loop; extend ``id_to_token`` and return the merges in rank order.

    Args:
        words: each distinct pre-token as its list of ids (merged in place).
        counts: how often each word occurs.
        id_to_token: the initial vocabulary (specials, alphabet); new tokens appended.
        vocab_size: stop when the vocabulary has this many tokens.
        min_frequency: stop when the best pair occurs fewer times than this.
        progress: called as ``progress(done, total)`` now and then, and at the end.
    """
    token_to_id = {t: i for i, t in enumerate(id_to_token)}
    pair_counts, where = count_pairs(words, counts)

    # Max-heap on (count, smallest pair) via negated counts; the tie counter only
    # keeps heapq from comparing the word sets of two identical keys.
    tie = counter()
    heap = [(-pair_counts[p], p, next(tie), pos) for p, pos in where.items()]
    heapq.heapify(heap)

    total = max(vocab_size - len(id_to_token), 0)
    step = max(total // 200, 1)
    merges: list[tuple[Pair, int]] = []
    if progress is not None:
        progress(0, total)

    while len(token_to_id) < vocab_size and heap:
        neg, pair, _, pos = heapq.heappop(heap)
        current = pair_counts[pair]
        if -neg != current:
            # stale entry: put it back with the current count (lazy deletion)
            heapq.heappush(heap, (-current, pair, next(tie), pos))
            continue
        if current < 1 or current < min_frequency:
            break

        new_token = id_to_token[pair[0]] + id_to_token[pair[1]]
        new_id = token_to_id.get(new_token)
        if new_id is None:
            new_id = len(id_to_token)
            id_to_token.append(new_token)
            token_to_id[new_token] = new_id
        merges.append((pair, new_id))

        _apply_merge(words, counts, pos, pair, new_id, pair_counts, heap, tie)

        if progress is not None and len(merges) % step == 0:
            progress(min(len(merges), total), total)

    if progress is not None:
        progress(total, total)
    return _ranked_merges(merges, id_to_token)


def _apply_merge(
    words: list[list[int]],
    counts: list[int],
    pos: set[int],
    pair: Pair,
    new_id: int,
    pair_counts: dict[Pair, int],
    heap: list,
    tie: counter,
) -> None:
    """Merge ``pair`` in the words of ``pos``; push the pairs that the merge formed."""
    a, b = pair
    formed: dict[Pair, set[int]] = {}
    for i in pos:
        n = counts[i]
        for p, change in merge_word(words[i], a, b, new_id):
            pair_counts[p] = pair_counts.get(p, 0) + change * n
            if change > 0:
                s = formed.get(p)
                if s is None:
                    formed[p] = {i}
                else:
                    s.add(i)
    for p, where in formed.items():
        c = pair_counts[p]
        if c > 0:
            heapq.heappush(heap, (-c, p, next(tie), where))


def _ranked_merges(
    merges: list[tuple[Pair, int]], id_to_token: list[str]
) -> list[tuple[str, str]]:
    """Merges as token strings in rank order; a repeated pair keeps its last rank."""
    last = {pair: rank for rank, (pair, _) in enumerate(merges)}
    return [
        (id_to_token[a], id_to_token[b])
        for rank, ((a, b), _) in enumerate(merges)
        if last[(a, b)] == rank
    ]
