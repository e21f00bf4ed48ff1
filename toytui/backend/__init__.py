"""The one place where toytui calls toytorch.

Screens never import toytorch themselves: they call ``backend.X``, which uses the same
library code as the ``toytorch`` command line (one training loop, one generation
function, one checkpoint format). Everything heavy (torch) is imported inside the
functions so the app opens quickly. Functions that run in worker threads say so; they
never touch widgets. By area: :mod:`.text` (corpora, tokenizers), :mod:`.training`
(devices, the loop), :mod:`.checkpoints` (checkpoints, generation, classification).
"""

from __future__ import annotations

import importlib

from toytui.backend.checkpoints import (  # noqa: F401
    CHECKPOINT_ROOT,
    CheckpointEntry,
    Classified,
    classify,
    list_checkpoints,
    list_classifiers,
    load_for_generation,
    stream_text,
)
from toytui.backend.text import (  # noqa: F401
    LARGE_CORPUS_BYTES,
    TOKENIZER_KINDS,
    Comparison,
    CorpusEntry,
    TokenizerSummary,
    compare_bpe,
    corpus_stats,
    default_corpus,
    list_corpora,
    load_corpus,
    load_tokenizer,
    summarise_tokenizer,
    train_tokenizer,
)
from toytui.backend.training import (  # noqa: F401
    VAL_FRACTION,
    TrainSpec,
    TrainUpdate,
    build_model,
    check_device,
    devices,
    new_control,
    run_training,
)


def missing(module: str) -> str | None:
    """None when ``module`` imports, else a one-line reason (for screens to show)."""
    try:
        importlib.import_module(module)
    except ImportError as e:
        return f"{module} is not available in this build ({e})"
    return None
