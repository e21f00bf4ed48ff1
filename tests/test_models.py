"""toytorch.models: configs, registry, loss, and both language models against torch.nn.

The reference models below are assembled in the test from torch.nn layers (nn.Embedding,
nn.TransformerEncoderLayer, nn.LSTM, ...) in the documented architecture; the toytorch
model's state_dict is loaded into them and the logits must agree.
"""

import math

import pytest
import torch
from torch import nn

import toytorch.models.base as base
from toytorch.models import (
    LSTMConfig,
    LSTMLanguageModel,
    TransformerConfig,
    TransformerLanguageModel,
    config_from_dict,
    config_to_dict,
    lm_loss,
    model_from_config,
    register_arch,
    unwrap_model,
)


def gpt_config(**overrides) -> TransformerConfig:
    fields = dict(vocab_size=23, context=8, n_layer=2, n_head=2, d_model=16)
    return TransformerConfig(**{**fields, **overrides})


def lstm_config(**overrides) -> LSTMConfig:
    fields = dict(vocab_size=19, context=8, n_layer=2, d_model=12)
    return LSTMConfig(**{**fields, **overrides})


def random_ids(vocab_size: int, *shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(vocab_size, shape, generator=g)


# --- configs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("vocab_size", 0),
        ("context", -4),
        ("n_layer", 1.5),
        ("n_head", True),
        ("d_model", "16"),
        ("dropout", 1.0),
        ("dropout", -0.1),
        ("norm_first", "yes"),
        ("activation", "swish"),
        ("positions", "rotary"),
        ("tie_weights", 1),
        ("bias", None),
    ],
)
def test_transformer_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field) as info:
        gpt_config(**{field: value})
    assert repr(value) in str(info.value) or str(value) in str(info.value)


def test_heads_must_divide_width():
    with pytest.raises(ValueError, match=r"n_head=3.*d_model=16"):
        gpt_config(n_head=3)


@pytest.mark.parametrize(
    "field, value",
    [("vocab_size", -1), ("context", 0), ("n_layer", 0), ("d_model", 2.0),
     ("dropout", 1.5), ("tie_weights", "no")],
)  # fmt: skip
def test_lstm_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        lstm_config(**{field: value})


def test_transformer_config_defaults_and_feedforward():
    cfg = gpt_config()
    assert (cfg.dropout, cfg.norm_first, cfg.activation) == (0.0, True, "gelu")
    assert (cfg.tie_weights, cfg.positions, cfg.bias) == (True, "learned", True)
    assert cfg.dim_feedforward == 64


# --- registry -----------------------------------------------------------------------


@pytest.mark.parametrize("cfg", [gpt_config(positions="sinusoidal"), lstm_config()])
def test_config_dict_round_trip(cfg):
    d = config_to_dict(cfg)
    assert d["arch"] == ("lstm" if isinstance(cfg, LSTMConfig) else "transformer")
    assert config_from_dict(d) == cfg
    model = model_from_config(d)
    assert type(model) is (
        LSTMLanguageModel if isinstance(cfg, LSTMConfig) else TransformerLanguageModel
    )
    assert model.config == cfg
    assert d == config_to_dict(cfg)  # not mutated


def test_registry_errors():
    with pytest.raises(ValueError, match="unknown arch 'gru'"):
        model_from_config({"arch": "gru", "vocab_size": 3})
    with pytest.raises(ValueError, match="unknown arch None"):
        model_from_config({"vocab_size": 3})
    d = {**config_to_dict(lstm_config()), "n_head": 4}
    with pytest.raises(ValueError, match=r"unknown lstm config fields: \['n_head'\]"):
        model_from_config(d)


def test_register_arch_extends_the_registry(monkeypatch):
    from dataclasses import dataclass

    @dataclass
    class TinyConfig:
        width: int = 3

    class Tiny(nn.Module):
        def __init__(self, config, device=None, dtype=None):
            super().__init__()
            self.config = config
            self.w = nn.Parameter(torch.zeros(config.width, device=device, dtype=dtype))

    monkeypatch.setattr(base, "ARCHS", dict(base.ARCHS))
    register_arch("tiny", TinyConfig, Tiny)
    d = config_to_dict(TinyConfig(width=5))
    assert d == {"arch": "tiny", "width": 5}
    model = model_from_config(d, dtype=torch.float64)
    assert model.w.shape == (5,) and model.w.dtype == torch.float64
    with pytest.raises(ValueError, match="dataclass"):
        register_arch("bad", Tiny, Tiny)


# --- lm_loss ------------------------------------------------------------------------


def test_lm_loss_matches_torch_cross_entropy():
    logits = torch.randn(3, 5, 7, dtype=torch.float64, requires_grad=True)
    targets = random_ids(7, 3, 5)
    loss = lm_loss(logits, targets)
    ref = nn.functional.cross_entropy(logits.reshape(15, 7), targets.reshape(15))
    torch.testing.assert_close(loss, ref)
    (g,) = torch.autograd.grad(loss, logits)
    (g_ref,) = torch.autograd.grad(ref, logits)
    torch.testing.assert_close(g, g_ref)


@pytest.mark.parametrize(
    "logits_shape, targets_shape",
    [((2, 5, 7), (2, 4)), ((10, 7), (10,)), ((2, 5, 7), (10,)), ((2, 5, 7), (5, 2))],
)
def test_lm_loss_names_mismatched_shapes(logits_shape, targets_shape):
    logits = torch.randn(*logits_shape)
    targets = torch.zeros(targets_shape, dtype=torch.long)
    with pytest.raises(ValueError) as info:
        lm_loss(logits, targets)
    assert str(tuple(logits_shape)) in str(info.value)
    assert str(tuple(targets_shape)) in str(info.value)


# --- parameter counts, by hand from the config --------------------------------------


@pytest.mark.parametrize("tie, bias, norm_first", [(True, True, True),
                                                   (False, False, True),
                                                   (True, True, False)])  # fmt: skip
def test_transformer_num_parameters_by_hand(tie, bias, norm_first):
    V, T, L, C = 23, 8, 2, 16
    cfg = gpt_config(tie_weights=tie, bias=bias, norm_first=norm_first)
    b = 1 if bias else 0
    attention = 3 * C * C + b * 3 * C + C * C + b * C  # in_proj + out_proj
    feedforward = C * 4 * C + b * 4 * C + 4 * C * C + b * C  # linear1 + linear2
    norms = 2 * (C + b * C)  # norm1 + norm2
    expected = V * C + T * C + L * (attention + feedforward + norms)
    expected += (C + b * C) if norm_first else 0  # final LayerNorm
    expected += 0 if tie else V * C  # the head, counted once when tied
    assert TransformerLanguageModel(cfg).num_parameters() == expected


def test_sinusoidal_positions_have_no_parameters():
    learned = TransformerLanguageModel(gpt_config()).num_parameters()
    fixed = TransformerLanguageModel(gpt_config(positions="sinusoidal"))
    assert learned - fixed.num_parameters() == 8 * 16


@pytest.mark.parametrize("tie", [True, False])
def test_lstm_num_parameters_by_hand(tie):
    V, L, C = 19, 2, 12
    per_layer = 4 * C * C + 4 * C * C + 2 * 4 * C  # W_ih, W_hh, b_ih, b_hh
    expected = V * C + L * per_layer + (0 if tie else V * C) + V  # head bias
    model = LSTMLanguageModel(lstm_config(tie_weights=tie))
    assert model.num_parameters() == expected


# --- tied weights, state_dict keys, dtype and device --------------------------------


def make_gpt(**overrides) -> TransformerLanguageModel:
    return TransformerLanguageModel(gpt_config(**overrides))


def make_lstm(**overrides) -> LSTMLanguageModel:
    return LSTMLanguageModel(lstm_config(**overrides))


@pytest.mark.parametrize("make", [make_gpt, make_lstm])
def test_tied_weights_share_storage(make):
    model = make(tie_weights=True)
    assert model.head.weight is model.embed.weight
    assert model.head.weight.data_ptr() == model.embed.weight.data_ptr()

    # still one tensor after a training step and after loading a state_dict
    idx = random_ids(model.config.vocab_size, 2, 5)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    logits, _ = model(idx)
    lm_loss(logits, idx).backward()
    opt.step()
    fresh = make(tie_weights=True)
    fresh.load_state_dict(model.state_dict())
    assert fresh.head.weight is fresh.embed.weight
    torch.testing.assert_close(fresh.embed.weight, model.embed.weight)

    untied = make(tie_weights=False)
    assert untied.head.weight.data_ptr() != untied.embed.weight.data_ptr()


def test_state_dict_keys_have_no_wrapper_prefixes():
    model = TransformerLanguageModel(gpt_config())
    keys = list(model.state_dict())
    assert keys and not any(k.startswith(("_orig_mod.", "module.")) for k in keys)

    compiled = torch.compile(model)  # lazy: nothing is compiled until called
    assert all(k.startswith("_orig_mod.") for k in compiled.state_dict())  # the trap
    assert unwrap_model(compiled) is model
    assert list(unwrap_model(compiled).state_dict()) == keys
    assert unwrap_model(nn.DataParallel(model)) is model


@pytest.mark.parametrize("arch", ["transformer", "lstm"])
def test_float64_construction_and_forward(arch):
    cfg = gpt_config() if arch == "transformer" else lstm_config()
    model = model_from_config(config_to_dict(cfg), dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in model.parameters())
    logits, _ = model(random_ids(cfg.vocab_size, 2, 6))
    assert logits.dtype == torch.float64 and logits.shape == (2, 6, cfg.vocab_size)

    model32 = model_from_config(config_to_dict(cfg)).double()
    assert model32(random_ids(cfg.vocab_size, 1, 3))[0].dtype == torch.float64


@pytest.mark.parametrize("arch", ["transformer", "lstm"])
def test_meta_device_construction_and_forward(arch):
    cfg = gpt_config(positions="sinusoidal") if arch == "transformer" else lstm_config()
    model = model_from_config(config_to_dict(cfg), device="meta")
    assert all(t.is_meta for t in [*model.parameters(), *model.buffers()])
    idx = torch.zeros(2, 5, dtype=torch.long, device="meta")
    logits, _ = model(idx)
    assert logits.is_meta and logits.shape == (2, 5, cfg.vocab_size)

    # materialise, then initialise for real
    model.to_empty(device="cpu")
    model.reset_parameters()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert model.head.weight is model.embed.weight  # re-tied
    logits, _ = model(random_ids(cfg.vocab_size, 1, 5))
    assert torch.isfinite(logits).all()


# --- forward against models assembled from torch.nn ---------------------------------


class TorchGPT(nn.Module):
    """The documented architecture from torch.nn layers, with the same state_dict keys
    except the position table, which the test hands over as a plain tensor."""

    def __init__(self, cfg: TransformerConfig, positions: torch.Tensor) -> None:
        super().__init__()
        C = cfg.d_model
        self.embed = nn.Embedding(cfg.vocab_size, C)
        self.positions = positions  # (context, C)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                C, cfg.n_head, 4 * C, cfg.dropout, cfg.activation, batch_first=True,
                norm_first=cfg.norm_first, bias=cfg.bias,
            )
            for _ in range(cfg.n_layer)
        )  # fmt: skip
        self.norm = nn.LayerNorm(C, bias=cfg.bias) if cfg.norm_first else None
        self.head = nn.Linear(C, cfg.vocab_size, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        T = idx.shape[1]
        x = self.embed(idx) + self.positions[:T]
        mask = nn.Transformer.generate_square_subsequent_mask(T, dtype=x.dtype)
        for layer in self.layers:
            x = layer(x, src_mask=mask, is_causal=True)
        if self.norm is not None:
            x = self.norm(x)
        return self.head(x)


def reference_sinusoids(T: int, C: int) -> torch.Tensor:
    """pe[p, 2i] = sin(p / 10000^(2i/C)), pe[p, 2i+1] = cos(...), written out."""
    pe = torch.zeros(T, C, dtype=torch.float64)
    for p in range(T):
        for i in range(0, C, 2):
            pe[p, i] = math.sin(p / 10000 ** (i / C))
            pe[p, i + 1] = math.cos(p / 10000 ** (i / C))
    return pe


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"norm_first": False, "activation": "relu", "tie_weights": False},
        {"positions": "sinusoidal", "bias": False},
    ],
)
def test_transformer_matches_torch_nn(overrides):
    torch.manual_seed(0)
    cfg = gpt_config(**overrides)
    model = TransformerLanguageModel(cfg, dtype=torch.float64).eval()
    state = model.state_dict()
    if cfg.positions == "learned":
        positions = state.pop("pos.weight")
    else:
        positions = reference_sinusoids(cfg.context, cfg.d_model)
    ref = TorchGPT(cfg, positions).double().eval()
    ref.load_state_dict(state, strict=True)
    if cfg.tie_weights:
        ref.head.weight = ref.embed.weight

    idx = random_ids(cfg.vocab_size, 3, cfg.context)
    logits, state_out = model(idx)
    assert state_out is None and logits.shape == (3, cfg.context, cfg.vocab_size)
    torch.testing.assert_close(logits, ref(idx), rtol=1e-10, atol=1e-10)


def test_transformer_gradients_match_torch_nn():
    torch.manual_seed(1)
    cfg = gpt_config()
    model = TransformerLanguageModel(cfg, dtype=torch.float64)
    state = model.state_dict()
    ref = TorchGPT(cfg, state.pop("pos.weight").clone().requires_grad_()).double()
    ref.load_state_dict(state)
    ref.head.weight = ref.embed.weight

    idx, targets = random_ids(cfg.vocab_size, 2, 2, 7, seed=5)
    lm_loss(model(idx)[0], targets).backward()
    ref_logits = ref(idx)
    V = cfg.vocab_size
    nn.functional.cross_entropy(ref_logits.view(-1, V), targets.view(-1)).backward()

    grads = {n: p.grad for n, p in model.named_parameters()}
    ref_grads = {n: p.grad for n, p in ref.named_parameters()}
    ref_grads["pos.weight"] = ref.positions.grad
    assert grads.keys() == ref_grads.keys()
    for name, g in grads.items():
        torch.testing.assert_close(g, ref_grads[name], rtol=1e-9, atol=1e-10, msg=name)


class TorchLSTMModel(nn.Module):
    def __init__(self, cfg: LSTMConfig) -> None:
        super().__init__()
        C = cfg.d_model
        self.embed = nn.Embedding(cfg.vocab_size, C)
        self.lstm = nn.LSTM(C, C, cfg.n_layer, batch_first=True)
        self.head = nn.Linear(C, cfg.vocab_size)
        if cfg.tie_weights:
            self.head.weight = self.embed.weight

    def forward(self, idx, state=None):
        x, state = self.lstm(self.embed(idx), state)
        return self.head(x), state


@pytest.mark.parametrize("tie", [True, False])
def test_lstm_matches_torch_nn(tie):
    torch.manual_seed(0)
    cfg = lstm_config(tie_weights=tie)
    model = LSTMLanguageModel(cfg, dtype=torch.float64)
    ref = TorchLSTMModel(cfg).double()
    ref.load_state_dict(model.state_dict(), strict=True)

    idx = random_ids(cfg.vocab_size, 3, 6)
    logits, (h, c) = model(idx)
    ref_logits, (ref_h, ref_c) = ref(idx)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(h, ref_h, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(c, ref_c, rtol=1e-10, atol=1e-10)
    assert h.shape == (cfg.n_layer, 3, cfg.d_model)

    # a carried state continues the sequence exactly
    more = random_ids(cfg.vocab_size, 3, 4, seed=1)
    torch.testing.assert_close(model(more, (h, c))[0], ref(more, (ref_h, ref_c))[0])


# --- behaviour --------------------------------------------------------------------


def test_flags():
    assert LSTMLanguageModel(lstm_config()).stateful is True
    assert TransformerLanguageModel(gpt_config()).stateful is False


def test_transformer_is_causal():
    model = TransformerLanguageModel(gpt_config()).eval()
    idx = random_ids(23, 1, 8)
    changed = idx.clone()
    changed[0, 5] = (idx[0, 5] + 1) % 23
    a, b = model(idx)[0], model(changed)[0]
    torch.testing.assert_close(a[:, :5], b[:, :5])
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_transformer_kv_cache_forward_equals_full_forward():
    model = TransformerLanguageModel(gpt_config(), dtype=torch.float64).eval()
    idx = random_ids(23, 2, 8)
    full, _ = model(idx)
    cache = model.new_cache()
    chunks = [model(idx[:, :3], cache)[0]]  # prefill 3, then one at a time
    chunks += [model(idx[:, t : t + 1], cache)[0] for t in range(3, 8)]
    assert len(cache[0]) == 8
    torch.testing.assert_close(torch.cat(chunks, dim=1), full, atol=1e-10, rtol=1e-10)
    with pytest.raises(ValueError, match="exceed context=8"):
        model(idx[:, :1], cache)


def test_transformer_rejects_long_or_flat_input():
    model = TransformerLanguageModel(gpt_config())
    with pytest.raises(ValueError, match="context=8"):
        model(random_ids(23, 1, 9))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        model(random_ids(23, 9))


def test_gpt2_initialisation():
    torch.manual_seed(0)
    cfg = gpt_config(n_layer=8, d_model=64, n_head=4, vocab_size=500)
    model = TransformerLanguageModel(cfg)
    layer = model.layers[3]
    residual = torch.cat([layer.self_attn.out_proj.weight.flatten(),
                          layer.linear2.weight.flatten()])  # fmt: skip
    assert abs(residual.std().item() - 0.02 / math.sqrt(16)) < 0.0005
    for p in (model.embed.weight, layer.linear1.weight, layer.self_attn.in_proj_weight):
        assert abs(p.std().item() - 0.02) < 0.001
    assert torch.all(layer.linear1.bias == 0) and torch.all(layer.norm1.weight == 1)

    # small weights: the untrained model predicts close to uniform
    logits, _ = model(random_ids(500, 4, 8))
    loss = lm_loss(logits, random_ids(500, 4, 8, seed=1))
    assert abs(loss.item() - math.log(500)) < 0.05


def test_lstm_initial_loss_is_near_uniform():
    model = LSTMLanguageModel(lstm_config(vocab_size=300))
    logits, _ = model(random_ids(300, 4, 8))
    assert (
        abs(lm_loss(logits, random_ids(300, 4, 8, seed=1)).item() - math.log(300)) < 0.1
    )


@pytest.mark.parametrize("make", [make_gpt, make_lstm])
def test_dropout_only_in_training(make):
    model = make(dropout=0.5)
    idx = random_ids(model.config.vocab_size, 2, 8)
    model.eval()
    torch.testing.assert_close(model(idx)[0], model(idx)[0])
    model.train()
    assert not torch.allclose(model(idx)[0], model(idx)[0])
