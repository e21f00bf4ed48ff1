"""Where training text comes from: bundled corpora, the user's own, downloads.

The front ends (CLI and TUI) share these functions:

- `resolve_corpus(name_or_path)` turns a corpus name or a file path into a file;
- `read_corpus(path, encoding=None, progress=None)` reads it safely as text;
- `list_corpora()`, `add_corpus(path)`, `corpus_stats(text)`, `cached_stats(info)`;
- `split_songs(text)` and `check_corpus_size(n_tokens, context, batch_size)`;
- `DEFAULT_CORPUS`, the name of the bundled songbook.

The catalogue of downloadable public-domain texts is in `toytorch.corpora.catalogue`
and the fetcher in `toytorch.corpora.fetch` (imported on demand: they are not needed
to train).
"""

from toytorch.corpora.reading import (
    CorpusStats,
    check_corpus_size,
    corpus_stats,
    min_corpus_tokens,
    read_corpus,
)
from toytorch.corpora.registry import (
    DEFAULT_CORPUS,
    ENV_DIR,
    CorpusInfo,
    add_corpus,
    cached_stats,
    check_name,
    corpus_info,
    find_bundled_dir,
    list_corpora,
    resolve_corpus,
    save_user_corpus,
    user_corpora_dir,
)
from toytorch.corpora.songs import song_title, split_songs

__all__ = [
    "DEFAULT_CORPUS",
    "ENV_DIR",
    "CorpusInfo",
    "CorpusStats",
    "add_corpus",
    "cached_stats",
    "check_corpus_size",
    "check_name",
    "corpus_info",
    "corpus_stats",
    "find_bundled_dir",
    "list_corpora",
    "min_corpus_tokens",
    "read_corpus",
    "resolve_corpus",
    "save_user_corpus",
    "song_title",
    "split_songs",
    "user_corpora_dir",
]
