"""``toytorch generate``: continue a prompt with a trained language model."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from toytorch.cli.checkpoints import find_checkpoint
from toytorch.errors import ToytorchError


def generate_command(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint folder or name.")],
    prompt: Annotated[str, typer.Option(help="Text to continue; empty: fresh.")] = "",
    max_tokens: Annotated[int, typer.Option(help="Tokens to generate.")] = 500,
    temperature: Annotated[float, typer.Option(help="0 is greedy.")] = 0.8,
    top_k: Annotated[int | None, typer.Option(help="Keep the k likeliest.")] = None,
    top_p: Annotated[float | None, typer.Option(help="Nucleus mass.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for repeatable text.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "cpu",
) -> None:
    """Continue a prompt with a trained model, streaming the text as it comes."""
    from toytorch.training import load_checkpoint, resolve_device

    loaded = load_checkpoint(find_checkpoint(checkpoint), resolve_device(device))
    tok = loaded.tokenizer
    if tok is None:
        raise ToytorchError(f"checkpoint {loaded.path} has no tokenizer.json")
    unknown = tok.unknown(prompt)
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:10])
        raise ToytorchError(f"the prompt has tokens the vocabulary lacks: {shown}")
    try:
        ids = loaded.model.generate(
            tok.encode(prompt),
            max_tokens,
            temperature,
            top_k,
            top_p,
            seed,
            start_id=tok.start_id,
        )
    except ValueError as e:
        raise ToytorchError(str(e)) from None
    sys.stdout.write(prompt)
    for piece in tok.stream(ids):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
