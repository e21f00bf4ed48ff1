"""toytorch.func against torch's own functions: values and gradients, float32/64."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from toytorch import func

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def _close(a, b, dtype):
    assert_close(a, b, atol=TOL[dtype], rtol=TOL[dtype])


def _values_and_grads(fn, x: torch.Tensor, w: torch.Tensor):
    """fn(x), and the gradient of sum(fn(x) * w) with respect to x."""
    x = x.detach().clone().requires_grad_(True)
    y = fn(x)
    (g,) = torch.autograd.grad((y * w).sum(), x)
    return y.detach(), g


def _agree(mine, theirs, x, dtype):
    w = torch.randn_like(x)  # a random upstream gradient, not just ones
    y1, g1 = _values_and_grads(mine, x, w)
    y2, g2 = _values_and_grads(theirs, x, w)
    _close(y1, y2, dtype)
    _close(g1, g2, dtype)


ACTIVATIONS = {
    "relu": (func.relu, torch.relu),
    "gelu": (func.gelu, F.gelu),
    "gelu_tanh": (
        lambda x: func.gelu(x, approximate="tanh"),
        lambda x: F.gelu(x, approximate="tanh"),
    ),
    "sigmoid": (func.sigmoid, torch.sigmoid),
    "softmax_last": (func.softmax, lambda x: torch.softmax(x, -1)),
    "softmax_dim0": (lambda x: func.softmax(x, 0), lambda x: torch.softmax(x, 0)),
    "softmax_t0.5": (
        lambda x: func.softmax(x, -1, temperature=0.5),
        lambda x: torch.softmax(x / 0.5, -1),
    ),
    "softmax_t3": (
        lambda x: func.softmax(x, 1, temperature=3.0),
        lambda x: torch.softmax(x / 3.0, 1),
    ),
    "log_softmax": (func.log_softmax, lambda x: torch.log_softmax(x, -1)),
    "log_softmax_dim1": (
        lambda x: func.log_softmax(x, 1),
        lambda x: torch.log_softmax(x, 1),
    ),
}


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed,shape", [(0, (7, 5)), (1, (3, 4, 6)), (2, (2, 3, 4, 5))])
def test_activation_matches_torch(name, dtype, seed, shape):
    torch.manual_seed(seed)
    mine, theirs = ACTIVATIONS[name]
    _agree(mine, theirs, torch.randn(shape, dtype=dtype) * 3, dtype)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_gradcheck(name):
    torch.manual_seed(0)
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    if name == "relu":  # keep away from the kink, where finite differences lie
        x = (x + x.sign() * 0.1).detach().requires_grad_(True)
    assert torch.autograd.gradcheck(ACTIVATIONS[name][0], (x,))


def test_relu_gradient_at_zero_is_torchs():
    x = torch.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    (g_mine,) = torch.autograd.grad(func.relu(x).sum(), x)
    (g_torch,) = torch.autograd.grad(torch.relu(x).sum(), x)
    assert g_mine.tolist() == g_torch.tolist() == [0.0, 0.0, 1.0]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_softmax_family_finite_at_huge_logits(dtype, scale):
    # Rows with entries +-1e4 apart: unshifted exp would overflow to inf (NaN results).
    x = torch.tensor([[1.0, 0.0, -1.0], [1.0, 1.0, 0.5]], dtype=dtype) * scale
    for mine, theirs in (ACTIVATIONS["softmax_last"], ACTIVATIONS["log_softmax"]):
        y, g = _values_and_grads(mine, x, torch.randn_like(x))
        assert torch.isfinite(y).all() and torch.isfinite(g).all()
        _agree(mine, theirs, x, dtype)
    y, g = _values_and_grads(func.sigmoid, x, torch.ones_like(x))
    assert torch.isfinite(g).all()
    _close(y, torch.sigmoid(x), dtype)


def test_softmax_rejects_non_positive_temperature():
    with pytest.raises(ValueError, match="temperature"):
        func.softmax(torch.zeros(3), temperature=0.0)


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match="approximate"):
        func.gelu(torch.zeros(3), approximate="erf")


def test_one_hot_matches_torch():
    ids = torch.tensor([[0, 3, 1], [2, 2, 0]])
    assert torch.equal(func.one_hot(ids, 5), F.one_hot(ids, 5))
    assert torch.equal(func.one_hot(ids), F.one_hot(ids))
    assert func.one_hot(ids).dtype == torch.long


@pytest.mark.parametrize(
    "ids,n", [(torch.tensor([0, 5]), 5), (torch.tensor([-1, 0]), 3), (torch.ones(2), 3)]
)
def test_one_hot_rejects_bad_ids(ids, n):
    with pytest.raises(ValueError):
        func.one_hot(ids, n)


def test_dropout_function():
    torch.manual_seed(0)
    x = torch.ones(200, 200)
    y = func.dropout(x, 0.3)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.01
    assert_close(y[kept], torch.full_like(y[kept], 1 / 0.7))
    assert func.dropout(x, 0.3, training=False) is x
    with pytest.raises(ValueError, match="p must be"):
        func.dropout(x, 1.5)


# -- cross-entropy -------------------------------------------------------------------

CE_SHAPES = [
    (6, 5),
    (4, 3, 7),
    (2, 4, 3, 2),
    (5,),
]  # (N,C), (N,C,d1), (N,C,d1,d2), (C,)
CE_OPTIONS = [
    {},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"label_smoothing": 0.1},
    {"label_smoothing": 0.25, "reduction": "none"},
    {"weight": True},
    {"weight": True, "label_smoothing": 0.2},
    {"weight": True, "reduction": "none"},
]


def _ce_inputs(shape, dtype, probs: bool, seed: int):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, dtype=dtype, generator=g) * 2
    C = shape[0] if len(shape) == 1 else shape[1]
    if probs:
        target = torch.softmax(
            torch.randn(shape, dtype=dtype, generator=g), 0 if len(shape) == 1 else 1
        )
    else:
        target_shape = () if len(shape) == 1 else (shape[0], *shape[2:])
        target = torch.randint(0, C, target_shape, generator=g)
    weight = torch.rand(C, dtype=dtype, generator=g) + 0.5
    return logits, target, weight


def _ce_agree(shape, dtype, probs, options, seed=0):
    logits, target, weight = _ce_inputs(shape, dtype, probs, seed)
    kw = dict(options)
    if kw.pop("weight", False):
        kw["weight"] = weight
    up = None

    def run(fn):
        nonlocal up
        x = logits.clone().requires_grad_(True)
        loss = fn(x, target, **kw)
        if up is None:
            up = torch.randn_like(loss)
        (g,) = torch.autograd.grad((loss * up).sum(), x)
        return loss.detach(), g

    l1, g1 = run(func.cross_entropy)
    l2, g2 = run(F.cross_entropy)
    _close(l1, l2, dtype)
    _close(g1, g2, dtype)


@pytest.mark.parametrize("shape", CE_SHAPES)
@pytest.mark.parametrize("options", CE_OPTIONS, ids=str)
def test_cross_entropy_class_indices(shape, options):
    for dtype in DTYPES:
        _ce_agree(shape, dtype, probs=False, options=options)


@pytest.mark.parametrize("shape", CE_SHAPES)
@pytest.mark.parametrize("options", CE_OPTIONS, ids=str)
def test_cross_entropy_probabilities(shape, options):
    for dtype in DTYPES:
        _ce_agree(shape, dtype, probs=True, options=options)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"label_smoothing": 0.1},
        {"weight": True},
        {"reduction": "sum"},
        {"reduction": "none", "label_smoothing": 0.3, "weight": True},
    ],
    ids=str,
)
def test_cross_entropy_ignore_index(dtype, options):
    torch.manual_seed(3)
    for ignore_index in (-100, 2):
        logits = torch.randn(8, 4, 3, dtype=dtype)
        target = torch.randint(0, 4, (8, 3))
        target[0, 0] = target[3, 2] = target[5, 1] = ignore_index
        kw = dict(options, ignore_index=ignore_index)
        if kw.pop("weight", False):
            kw["weight"] = torch.rand(4, dtype=dtype) + 0.5
        x1 = logits.clone().requires_grad_(True)
        x2 = logits.clone().requires_grad_(True)
        l1, l2 = func.cross_entropy(x1, target, **kw), F.cross_entropy(x2, target, **kw)
        _close(l1, l2, dtype)
        l1.sum().backward()
        l2.sum().backward()
        _close(x1.grad, x2.grad, dtype)
        assert x1.grad[0, :, 0].abs().max() == 0  # an ignored row gets no gradient


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("probs", [False, True])
def test_cross_entropy_finite_at_huge_logits(dtype, probs):
    logits, target, _ = _ce_inputs((6, 5), dtype, probs, seed=4)
    logits = logits.sign() * 1e4  # entries 2e4 apart
    x = logits.clone().requires_grad_(True)
    loss = func.cross_entropy(x, target, label_smoothing=0.1)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    _ce_agree((6, 5), dtype, probs, {"label_smoothing": 0.1}, seed=4)


def test_cross_entropy_gradcheck():
    torch.manual_seed(0)
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0, 3, -100, 1, 2, 3])
    w = torch.rand(4, dtype=torch.float64) + 0.5
    for kw in ({}, {"weight": w, "label_smoothing": 0.2}, {"reduction": "none"}):
        assert torch.autograd.gradcheck(
            lambda a, kw=kw: func.cross_entropy(a, t, **kw), (x,)
        )


def test_cross_entropy_worked_by_hand():
    # Two classes with logits (0, ln 3): p = (1/4, 3/4); target 1 costs -ln(3/4).
    x = torch.tensor([[0.0, math.log(3.0)]], dtype=torch.float64)
    loss = func.cross_entropy(x, torch.tensor([1]))
    assert loss.item() == pytest.approx(-math.log(0.75), abs=1e-12)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: func.cross_entropy(torch.zeros(3, 4), torch.tensor([0, 4, 1])), "4"),
        (lambda: func.cross_entropy(torch.zeros(3, 4), torch.tensor([0, 1])), "shape"),
        (lambda: func.cross_entropy(torch.zeros(3, 4), torch.zeros(3, 5)), "shape"),
        (lambda: func.cross_entropy(torch.zeros(3, 4), torch.zeros(3).int()), "int64"),
        (
            lambda: func.cross_entropy(
                torch.zeros(3, 4), torch.zeros(3).long(), reduction="avg"
            ),
            "reduction",
        ),
        (
            lambda: func.cross_entropy(
                torch.zeros(3, 4), torch.zeros(3).long(), label_smoothing=1.5
            ),
            "label_smoothing",
        ),
    ],
)
def test_cross_entropy_rejects_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# -- learning-rate schedule ----------------------------------------------------------


def _torch_schedule(lr, min_lr, warmup, max_steps, steps):
    """lrs from torch's own schedulers: LinearLR warm-up, then CosineAnnealingLR."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    warm = torch.optim.lr_scheduler.LinearLR(
        opt, start_factor=1 / (warmup + 1), end_factor=1.0, total_iters=warmup
    )
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=max_steps - warmup, eta_min=min_lr
    )
    sched = torch.optim.lr_scheduler.SequentialLR(opt, [warm, cos], milestones=[warmup])
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize(
    "lr,min_lr,warmup,max_steps",
    [(1e-3, 1e-4, 20, 300), (3e-4, 0.0, 10, 50), (1.0, 0.1, 1, 7)],
)
def test_cosine_schedule_matches_torch_schedulers(lr, min_lr, warmup, max_steps):
    expected = _torch_schedule(lr, min_lr, warmup, max_steps, max_steps + 1)
    got_fn = [
        func.cosine_lr(s, lr, min_lr, warmup, max_steps) for s in range(max_steps + 1)
    ]
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = func.CosineWarmup(opt, warmup, max_steps, min_lr=min_lr)
    got_sched = []
    for _ in range(max_steps + 1):
        got_sched.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert got_fn == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert got_sched == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert func.cosine_lr(max_steps + 10, lr, min_lr, warmup, max_steps) == min_lr


def test_cosine_schedule_resumes_from_state_dict():
    def make():
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        return opt, func.CosineWarmup(opt, 3, 20, min_lr=0.01)

    opt, sched = make()
    for _ in range(8):
        opt.step()
        sched.step()
    state = sched.state_dict()
    assert all(
        isinstance(v, int | float | list | bool | type(None)) for v in state.values()
    )
    opt2, sched2 = make()
    sched2.load_state_dict(state)
    opt2.param_groups[0]["lr"] = sched2.get_last_lr()[0]
    for _ in range(5):
        opt.step(), sched.step(), opt2.step(), sched2.step()
        assert opt.param_groups[0]["lr"] == opt2.param_groups[0]["lr"]


def test_cosine_schedule_rejects_bad_arguments():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match="max_steps"):
        func.CosineWarmup(opt, 10, 5)
    with pytest.raises(ValueError, match="warmup_steps"):
        func.CosineWarmup(opt, -1, 5)
    with pytest.raises(ValueError, match="min_lr"):
        func.CosineWarmup(opt, 1, 5, min_lr=-1.0)


def test_functions_run_on_meta_device_and_keep_dtype():
    for device, dtype in (("meta", torch.float32), ("cpu", torch.float64)):
        x = torch.randn(4, 5, device=device, dtype=dtype, requires_grad=True)
        t = torch.zeros(4, dtype=torch.long, device=device)
        outs = [
            func.relu(x),
            func.gelu(x),
            func.gelu(x, "tanh"),
            func.sigmoid(x),
            func.softmax(x, temperature=2.0),
            func.log_softmax(x),
            func.dropout(x, 0.5),
            func.cross_entropy(x, t, label_smoothing=0.1),
            func.cross_entropy(x, torch.softmax(x.detach(), -1)),
        ]
        for y in outs:
            assert y.device.type == device and y.dtype == dtype
        sum(y.sum() for y in outs).backward()
        assert x.grad.device.type == device and x.grad.dtype == dtype


def test_gelu_without_grad_matches():
    x = torch.randn(6, dtype=torch.float64)
    _close(func.gelu(x), F.gelu(x), torch.float64)
    with torch.no_grad():
        _close(func.gelu(x.requires_grad_(True)), F.gelu(x), torch.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gelu_backward_twice_through_a_retained_graph(dtype):
    # gelu's forward works in place on its own buffers; the saved dy/dx must come
    # through a second backward (retain_graph=True) unchanged.
    torch.manual_seed(3)
    x = torch.randn(40, 9, dtype=dtype, requires_grad=True)
    w1, w2 = torch.randn(40, 9, dtype=dtype), torch.randn(40, 9, dtype=dtype)
    y = func.gelu(x)
    (g1,) = torch.autograd.grad(y, x, w1, retain_graph=True)
    (g2,) = torch.autograd.grad(y, x, w2)
    xr = x.detach().requires_grad_(True)
    yr = F.gelu(xr)
    (r1,) = torch.autograd.grad(yr, xr, w1, retain_graph=True)
    (r2,) = torch.autograd.grad(yr, xr, w2)
    _close(g1, r1, dtype)
    _close(g2, r2, dtype)
