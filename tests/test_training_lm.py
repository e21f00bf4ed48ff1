"""The language-model task on real toytorch models: streams, detached state, resume."""

import pytest
import torch

from toytorch.data import split_by_position
from toytorch.models import (
    LSTMConfig,
    LSTMLanguageModel,
    TransformerConfig,
    TransformerLanguageModel,
)
from toytorch.tokenizers import train_tokenizer
from toytorch.training import (
    Evaluated,
    LanguageModelTask,
    Step,
    TrainConfig,
    TrainControl,
    load_checkpoint,
    train,
)

TEXT = (
    "Row, row, row your boat, gently down the stream;\n"
    "merrily, merrily, merrily, merrily, life is but a dream.\n"
) * 12


def tiny(arch: str, vocab_size: int, seed: int = 0):
    torch.manual_seed(seed)
    if arch == "lstm":
        return LSTMLanguageModel(
            LSTMConfig(vocab_size=vocab_size, context=16, n_layer=1, d_model=32)
        )
    return TransformerLanguageModel(
        TransformerConfig(
            vocab_size=vocab_size,
            context=16,
            n_layer=1,
            n_head=2,
            d_model=32,
            dropout=0.1,
        )
    )


def setup(arch: str, **kw):
    tok = train_tokenizer("char", [TEXT])
    ids = torch.tensor(tok.encode(TEXT), dtype=torch.long)
    train_ids, val_ids = split_by_position(ids, 0.1)
    task = LanguageModelTask(train_ids, val_ids, tok, {"name": "row"})
    base = dict(
        max_steps=12,
        batch_size=4,
        lr=3e-3,
        min_lr=3e-4,
        warmup=2,
        eval_every=4,
        eval_batches=3,
        device="cpu",
        seed=5,
    )
    return tok, task, TrainConfig(**{**base, **kw})


def step_losses(events):
    return [e.loss for e in events if isinstance(e, Step)]


def test_lstm_state_is_carried_detached():
    tok, task, config = setup("lstm", max_steps=3, eval_every=0)
    model = tiny("lstm", tok.vocab_size)
    seen = []
    forward = model.forward

    def spy(idx, state=None):
        seen.append(state)
        return forward(idx, state)

    model.forward = spy
    train(model, task, config)
    assert seen[0] is None  # the first window of a pass starts fresh
    for state in seen[1:3]:  # then the previous window's state comes back...
        assert state is not None
        for t in state:  # ...cut from the graph of the step that made it
            assert not t.requires_grad and t.grad_fn is None
    assert all(not t.requires_grad for t in task.carried)


@pytest.mark.parametrize("arch", ["transformer", "lstm"])
def test_resume_repeats_the_uninterrupted_curve(tmp_path, arch):
    tok, task, config = setup(arch, out_dir=str(tmp_path / "a"))
    events = []
    train(tiny(arch, tok.vocab_size), task, config, events.append)
    straight = step_losses(events)

    tok, task, config = setup(arch, out_dir=str(tmp_path / "b"))
    control, first = TrainControl(), []

    def stop_at_6(e):
        first.append(e)
        if isinstance(e, Step) and e.step == 6:
            control.stop()

    train(tiny(arch, tok.vocab_size), task, config, stop_at_6, control)
    tok, task, config = setup(arch, out_dir=str(tmp_path / "b"))
    second = []
    train(tiny(arch, tok.vocab_size, seed=1), task, config, second.append, resume=True)
    assert len(step_losses(first)) == 6
    assert step_losses(first) + step_losses(second) == straight


def test_evaluation_is_over_a_fixed_set():
    tok, task, config = setup("transformer", max_steps=1)
    model = tiny("transformer", tok.vocab_size)
    task.setup(model, config, torch.device("cpu"))
    model.eval()
    with torch.no_grad():
        a, b = task.evaluate(model), task.evaluate(model)
    assert a == b
    assert a["perplexity"] == pytest.approx(torch.tensor(a["val_loss"]).exp().item())


def test_checkpoint_rebuilds_the_trained_model(tmp_path):
    tok, task, config = setup("transformer", out_dir=str(tmp_path / "c"))
    model = tiny("transformer", tok.vocab_size)
    train(model, task, config)
    loaded = load_checkpoint(tmp_path / "c")
    assert loaded.config["model"]["arch"] == "transformer"
    assert loaded.config["task"]["corpus"] == {"name": "row"}
    assert loaded.tokenizer.decode(loaded.tokenizer.encode("row")) == "row"
    model.eval()
    want = list(model.generate(tok.encode("Row"), 20, temperature=0))
    assert list(loaded.model.generate(tok.encode("Row"), 20, temperature=0)) == want
    assert loaded.metrics["step"] == 12 and len(loaded.metrics["train_loss"]) == 12


def test_lstm_memorises_a_song():  # 16 s on 2 quiet cores (80 s when they are busy)
    """Must show 3: an LSTM learns one ~1 KB song of the bundled corpus by heart.

    Four contiguous streams of 32-character windows, state carried across windows.
    Once the loss on the whole song (the four streams, from a fresh state) is under
    0.02 (at 0.05 a word or two of the verse may still be off), greedy decoding from
    the title line must give the first verse exactly.
    Only the first stream's span is checked: later text is learnt starting from a
    fresh state at each stream's start, so a continuation that runs across a stream
    boundary is not the case this training prepares for.
    """
    from toytorch.corpora import (
        DEFAULT_CORPUS,
        read_corpus,
        resolve_corpus,
        split_songs,
    )

    song = split_songs(read_corpus(resolve_corpus(DEFAULT_CORPUS)))[0]
    assert 800 <= len(song.encode()) <= 1300
    title, rest = song.split("\n", 1)
    verse = "\n".join(rest.split("\n")[:5]) + "\n"  # blank line + four lyric lines
    tok = train_tokenizer("char", [song])
    ids = torch.tensor(tok.encode(song), dtype=torch.long)
    assert len(verse) < len(ids) // 4  # the verse lies inside the first stream

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matmuls: one thread is the fastest
    try:
        torch.manual_seed(0)
        config = LSTMConfig(
            vocab_size=tok.vocab_size, context=32, n_layer=1, d_model=256
        )
        model = LSTMLanguageModel(config)
        task = LanguageModelTask(ids, ids, tok)
        control, evals = TrainControl(), []

        def on_event(e):
            if isinstance(e, Evaluated):
                evals.append(e.metrics["val_loss"])
                if e.metrics["val_loss"] < 0.02:  # well below the 0.05 asked for
                    control.stop()

        steps = len(ids) // (4 * 32)  # one pass over the song
        train_config = TrainConfig(
            max_steps=250,
            batch_size=4,
            lr=2e-2,
            min_lr=2e-2,  # constant after the warm-up
            warmup=10,
            weight_decay=0.0,
            eval_every=steps,
            eval_batches=steps,
            device="cpu",
            seed=0,
        )
        train(model, task, train_config, on_event, control)
        assert evals[-1] < 0.02, f"loss still {evals[-1]:.3f} after 250 steps"

        ids_out = model.generate(tok.encode(title + "\n"), len(verse), 0.0)
        assert tok.decode(ids_out) == verse
    finally:
        torch.set_num_threads(threads)
