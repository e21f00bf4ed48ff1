"""What every toytorch model shares: the language-model base, the loss, the registry.

- ``LanguageModel``: ``forward(idx, state) -> (logits, state)``, ``num_parameters()``
  and ``generate()``, which streams one token id at a time.
- ``lm_loss(logits, targets)``: next-token cross-entropy with the shapes checked.
- A registry from an architecture name to its (config class, model class), so a config
  saved as a plain dict (``config_to_dict``) rebuilds its model (``model_from_config``).
  Other model families join it with ``register_arch``.
- Small validators that config dataclasses share, raising ValueError naming the field.
"""

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from toytorch.func import cross_entropy
from toytorch.models.sampling import check_sampling_args, sample_next


class LanguageModel(nn.Module):
    """Base of the token-in, logits-out models: the decoding loop lives here.

    A subclass sets ``self.config`` (with at least ``vocab_size``, ``context`` and
    ``tie_weights``), names its token embedding ``embed`` and its output layer
    ``head``, and implements ``forward(idx (B, T), state=None) -> (logits (B, T, V),
    state)``. It may override ``_cached_logits``, one step of incremental decoding; the
    default recomputes the window, as ``use_cache=False`` does.

    Attributes:
        stateful: True when the state returned by ``forward`` carries information from
            one window to the next (the LSTM's (h, c)), so a trainer should feed
            consecutive windows and pass the state back in, detached.
    """

    stateful: bool = False

    def tie_weights(self) -> None:
        """Make ``head.weight`` the very tensor ``embed.weight`` when the config asks.

        Called at construction and by ``reset_parameters``: ``to_empty()`` (after
        building on the meta device) gives each of them a separate new tensor.
        """
        if self.config.tie_weights:
            self.head.weight = self.embed.weight

    def num_parameters(self) -> int:
        """Number of trainable values; a tied weight (embedding = head) counts once."""
        return sum(p.numel() for p in self.parameters())

    def generate(
        self,
        prompt_ids: Sequence[int] | torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        use_cache: bool = True,
        start_id: int | None = None,
    ) -> Iterator[int]:
        """Stream ``max_new_tokens`` new token ids continuing ``prompt_ids``.

        Arguments are checked here, before the first token: a bad one raises ValueError
        at the call, not at the first ``next()``.

        Args:
            prompt_ids: the prompt as token ids (a list or a 1-D LongTensor). Only its
                last ``config.context`` tokens are seen. An empty prompt needs
                ``start_id``, which then stands in for it (a ValueError otherwise).
            max_new_tokens: how many ids to yield (>= 0).
            temperature: 0 is greedy (argmax); > 0 divides the logits before sampling.
            top_k, top_p: optional filters, see ``toytorch.models.sampling``.
            seed: seeds this call's own ``torch.Generator`` (never the global RNG), so
                the same seed gives the same tokens; None draws a fresh seed.
            use_cache: decode incrementally (KV cache or carried LSTM state) instead of
                recomputing the whole window for every token.
            start_id: the token that starts an empty prompt (the tokenizer's start_id).

        The model is run in eval mode under ``torch.no_grad()`` only while it computes;
        its training mode is restored before each id is yielded, so stopping early
        leaves the model as it was.
        """
        check_sampling_args(temperature, top_k, top_p)
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
            raise ValueError(f"max_new_tokens must be an int, got {max_new_tokens!r}")
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        tokens = self._prompt_tokens(prompt_ids, start_id)

        generator = torch.Generator()  # CPU: sampling runs on the CPU, see sample_next
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed)

        def pick(logits: torch.Tensor) -> int:
            return sample_next(logits, temperature, top_k, top_p, generator)

        return self._decode(tokens, max_new_tokens, pick, use_cache)

    def _prompt_tokens(
        self, prompt_ids: Sequence[int] | torch.Tensor, start_id: int | None
    ) -> list[int]:
        """The prompt as a list of valid ids, the empty prompt replaced by start_id."""
        if isinstance(prompt_ids, torch.Tensor):
            if prompt_ids.dim() != 1:
                raise ValueError(
                    f"prompt_ids must be 1-D, got shape {tuple(prompt_ids.shape)}"
                )
            prompt_ids = prompt_ids.tolist()
        tokens = [int(i) for i in prompt_ids]
        if not tokens:
            if start_id is None:
                raise ValueError(
                    "prompt_ids is empty: pass start_id (the tokenizer's start token)"
                )
            tokens = [int(start_id)]
        vocab_size = self.config.vocab_size
        bad = [i for i in tokens if not 0 <= i < vocab_size]
        if bad:
            raise ValueError(f"prompt_ids has ids outside [0, {vocab_size}): {bad[:5]}")
        return tokens

    @torch.no_grad()  # on a generator function, torch applies it around each step only
    def _decode(
        self,
        tokens: list[int],
        max_new_tokens: int,
        pick: Callable[[torch.Tensor], int],
        use_cache: bool,
    ) -> Iterator[int]:
        """The decoding loop: logits of the next token, pick one, yield it, repeat."""
        context = self.config.context
        state = None
        for _ in range(max_new_tokens):
            was_training = self.training
            if was_training:
                self.eval()
            try:
                if use_cache:
                    logits, state = self._cached_logits(tokens, state)
                else:
                    logits = self._window_logits(tokens)
            finally:
                if was_training:
                    self.train()
            next_id = pick(logits)
            tokens.append(next_id)
            if len(tokens) > 2 * context:  # only the window is ever read again
                del tokens[:-context]
            yield next_id

    def _window_logits(self, tokens: list[int]) -> torch.Tensor:
        """Next-token logits (V,) recomputed from the last ``context`` tokens."""
        idx = self._ids_tensor(tokens[-self.config.context :])  # (1, T)
        return self._last_logits(idx, None)[0]

    def _last_logits(self, idx: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """Logits (V,) after the last token of idx (1, T), and the new state.

        A subclass may override it to apply its head to the last position only.
        """
        logits, state = self(idx, state)
        return logits[0, -1], state

    def _cached_logits(self, tokens: list[int], state: Any) -> tuple[torch.Tensor, Any]:
        """Next-token logits (V,) and the new state, feeding only what state lacks.

        ``state`` is None on the first call; afterwards it is what this method returned,
        which has seen every token but the last one appended to ``tokens``.
        """
        return self._window_logits(tokens), None

    def _ids_tensor(self, tokens: list[int]) -> torch.Tensor:
        """A (1, T) LongTensor on the model's device."""
        device = next(self.parameters()).device
        return torch.tensor([tokens], dtype=torch.long, device=device)


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy in nats of logits (B, T, V) and targets (B, T).

    Both shapes are checked explicitly: flattening a (B, T, V) tensor against the wrong
    targets would otherwise give a plausible-looking but meaningless number.
    """
    if logits.dim() != 3 or targets.dim() != 2 or logits.shape[:2] != targets.shape:
        raise ValueError(
            "lm_loss expects logits (B, T, V) and targets (B, T), got logits "
            f"{tuple(logits.shape)} and targets {tuple(targets.shape)}"
        )
    B, T, V = logits.shape
    return cross_entropy(logits.reshape(B * T, V), targets.reshape(B * T))


# --- registry: architecture name -> (config class, model class) -----------------------

ARCHS: dict[str, tuple[type, type[nn.Module]]] = {}


def register_arch(arch: str, config_cls: type, model_cls: type[nn.Module]) -> None:
    """Make ``arch`` buildable from a dict: ``model_cls(config_cls(**fields))``.

    ``config_cls`` must be a dataclass; ``model_cls(config)`` must build the model.
    """
    if not dataclasses.is_dataclass(config_cls):
        raise ValueError(f"config_cls must be a dataclass, got {config_cls!r}")
    for known, (known_cfg, _) in ARCHS.items():
        if known_cfg is config_cls and known != arch:
            raise ValueError(
                f"{config_cls.__name__} is already registered as {known!r}"
            )
    ARCHS[arch] = (config_cls, model_cls)


def arch_of(config: Any) -> str:
    """The registered architecture name of a config object."""
    for arch, (config_cls, _) in ARCHS.items():
        if type(config) is config_cls:
            return arch
    raise ValueError(f"no architecture is registered for {type(config).__name__}")


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of the config's fields plus ``"arch"``."""
    return {"arch": arch_of(config), **dataclasses.asdict(config)}


def config_from_dict(d: dict[str, Any]) -> Any:
    """The config object that a ``config_to_dict`` dict describes, validated."""
    fields = dict(d)
    arch = fields.pop("arch", None)
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; known: {sorted(ARCHS)}")
    config_cls, _ = ARCHS[arch]
    names = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(fields) - names)
    if unknown:
        raise ValueError(f"unknown {arch} config fields: {unknown}")
    return config_cls(**fields)


def model_from_config(
    d: dict[str, Any],
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> nn.Module:
    """Build a freshly initialised model from a ``config_to_dict`` dict."""
    config = config_from_dict(d)
    _, model_cls = ARCHS[d["arch"]]
    return model_cls(config, device=device, dtype=dtype)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain model inside ``torch.compile`` / DataParallel wrappers.

    Save ``unwrap_model(m).state_dict()``: its keys carry no ``_orig_mod.`` or
    ``module.`` prefix, so a checkpoint loads into a model built from its config.
    """
    while True:
        if hasattr(model, "_orig_mod"):  # torch.compile's OptimizedModule
            model = model._orig_mod
        elif type(model).__name__ in ("DataParallel", "DistributedDataParallel"):
            model = model.module
        else:
            return model


# --- validators shared by the config dataclasses -----------------------------------


def check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def check_dropout(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")


def check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
