"""Convolution and Pooling against their torch.nn twins: outputs and every gradient."""

import pytest
import torch
from torch import nn

from toytorch.layers import Convolution, Pooling
from toytorch.layers import _conv_matmul as conv_module

TOL = {torch.float32: 1e-5, torch.float64: 1e-10}

# (in, out, kernel, stride, padding, dilation, groups, bias, H, W)
CONV_CASES = [
    (3, 8, 3, 1, 1, 1, 1, True, 9, 11),
    (3, 5, 3, 1, 0, 1, 1, False, 7, 7),
    (4, 6, (3, 2), (2, 1), (1, 2), (2, 1), 2, True, 11, 9),
    (2, 4, 5, 2, 2, 1, 1, True, 13, 10),
    (6, 6, 3, 3, 1, 2, 3, True, 15, 14),
    (6, 9, 1, 1, 0, 1, 3, True, 5, 6),
    (8, 8, 3, 1, 1, 1, 8, True, 7, 5),  # depthwise
    (5, 4, (1, 4), (1, 3), 0, 1, 1, True, 4, 17),
    (2, 3, 2, 1, "same", 1, 1, True, 6, 7),  # even kernel: uneven padding
    (2, 3, 3, 1, "same", 2, 1, True, 8, 5),
    (3, 2, 3, 2, "valid", 1, 1, True, 9, 8),
]


@pytest.fixture(params=["patches", "taps", "patches-blocks", "taps-blocks"])
def path(request, monkeypatch):
    """Run each test through both strategies of the convolution (im2col, taps), with
    the forward done in one block or one image per block."""
    width = 10**9 if request.param.startswith("patches") else 0
    monkeypatch.setattr(conv_module, "PATCH_COLUMNS", width)
    if request.param.endswith("blocks"):
        monkeypatch.setattr(conv_module, "BLOCK_COLUMNS", 1)
    return request.param


def _twins(case, dtype):
    c_in, c_out, k, s, p, d, g, bias, H, W = case
    args = dict(stride=s, padding=p, dilation=d, groups=g, bias=bias, dtype=dtype)
    ref = nn.Conv2d(c_in, c_out, k, **args)
    mine = Convolution(c_in, c_out, k, **args)
    mine.load_state_dict(ref.state_dict())
    return ref, mine, (3, c_in, H, W)


def _check_grads(ref: nn.Module, mine: nn.Module, shape, dtype) -> None:
    """Outputs, input gradient and every parameter gradient agree."""
    tol = TOL[dtype]
    x_ref = torch.randn(shape, dtype=dtype, requires_grad=True)
    x_mine = x_ref.detach().clone().requires_grad_()
    y_ref, y_mine = ref(x_ref), mine(x_mine)
    torch.testing.assert_close(y_mine, y_ref, atol=tol, rtol=tol)

    grad = torch.randn_like(y_ref)
    y_ref.backward(grad)
    y_mine.backward(grad)
    torch.testing.assert_close(x_mine.grad, x_ref.grad, atol=tol, rtol=tol)
    mine_params = dict(mine.named_parameters())
    for name, p_ref in ref.named_parameters():
        torch.testing.assert_close(
            mine_params[name].grad, p_ref.grad, atol=tol, rtol=tol
        )


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "-".join(map(str, c)))
def test_convolution_matches_conv2d(case, dtype, path):
    torch.manual_seed(0)
    ref, mine, shape = _twins(case, dtype)
    _check_grads(ref, mine, shape, dtype)


def test_convolution_wide_layer_uses_taps_and_matches():
    """A layer above PATCH_COLUMNS (64 * 3 * 3) with the default strategy choice."""
    torch.manual_seed(1)
    ref, mine, _ = _twins((64, 16, 3, 1, 1, 1, 1, True, 6, 5), torch.float32)
    assert not conv_module._use_patches(mine.weight, 1)
    _check_grads(ref, mine, (2, 64, 6, 5), torch.float32)


def test_convolution_by_hand():
    """A 2x2 kernel of ones sums each 2x2 window; the bias is added."""
    conv = Convolution(1, 1, 2)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.fill_(0.5)
    x = torch.arange(9.0).view(1, 1, 3, 3)  # 0 1 2 / 3 4 5 / 6 7 8
    expected = torch.tensor([[[[8.5, 12.5], [20.5, 24.5]]]])
    torch.testing.assert_close(conv(x), expected)


def test_convolution_gradcheck():
    torch.manual_seed(2)
    conv = Convolution(4, 2, (3, 2), stride=(2, 1), padding=1, groups=2).double()
    x = torch.randn(2, 4, 6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, w, b: conv_module.ConvFunction.apply(x, w, b, conv._geometry),
        (x, conv.weight, conv.bias),
    )


def test_convolution_same_seed_same_init_as_torch():
    torch.manual_seed(3)
    ref = nn.Conv2d(6, 4, (3, 5), groups=2)
    torch.manual_seed(3)
    mine = Convolution(6, 4, (3, 5), groups=2)
    torch.testing.assert_close(mine.weight, ref.weight, atol=0, rtol=0)
    torch.testing.assert_close(mine.bias, ref.bias, atol=0, rtol=0)
    assert list(mine.state_dict()) == list(ref.state_dict())


def test_convolution_unbatched_and_channels_last_input():
    torch.manual_seed(4)
    ref, mine, _ = _twins((3, 4, 3, 1, 1, 1, 1, True, 5, 6), torch.float32)
    x = torch.randn(3, 5, 6)
    torch.testing.assert_close(mine(x), ref(x), atol=1e-5, rtol=1e-5)
    xb = torch.randn(2, 3, 5, 6).contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(mine(xb), ref(xb), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("padding", [0, 1])
def test_convolution_leaves_its_input_alone(padding):
    """Backward reuses its rebuilt frame for the input gradient, never x itself."""
    torch.manual_seed(7)
    ref, mine, shape = _twins((4, 4, 3, 1, padding, 1, 1, True, 6, 7), torch.float64)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    x_before = x.detach().clone()
    y = mine(x)
    grad = torch.randn_like(y)
    y.backward(grad, retain_graph=True)
    torch.testing.assert_close(x.detach(), x_before, atol=0, rtol=0)
    first_x, first_w = x.grad.clone(), mine.weight.grad.clone()
    y.backward(grad)  # a second backward over the same graph adds the same again
    torch.testing.assert_close(x.grad, 2 * first_x)
    torch.testing.assert_close(mine.weight.grad, 2 * first_w)
    y_ref = ref(x_before.requires_grad_())
    y_ref.backward(grad)
    torch.testing.assert_close(first_w, ref.weight.grad)


def test_convolution_without_input_grad():
    """Only the weight needs a gradient (the first layer of a network)."""
    torch.manual_seed(5)
    ref, mine, shape = _twins((3, 4, 3, 2, 1, 1, 1, True, 7, 7), torch.float64)
    x = torch.randn(shape, dtype=torch.float64)
    ref(x).sum().backward()
    mine(x).sum().backward()
    torch.testing.assert_close(mine.weight.grad, ref.weight.grad)
    torch.testing.assert_close(mine.bias.grad, ref.bias.grad)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(groups=4), "groups=4"),
        (dict(padding_mode="reflect"), "padding_mode"),
        (dict(padding="same", stride=2), "padding='same'"),
        (dict(padding="full"), "padding"),
        (dict(kernel_size=0), "kernel_size"),
    ],
)
def test_convolution_bad_arguments(kwargs, message):
    args = dict(in_channels=6, out_channels=3, kernel_size=3) | kwargs
    with pytest.raises(ValueError, match=message):
        Convolution(**args)


def test_convolution_bad_input():
    conv = Convolution(3, 4, 5)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        conv(torch.randn(2, 4, 9, 9))
    with pytest.raises(ValueError, match="smaller than the kernel"):
        conv(torch.randn(2, 3, 4, 9))


# (kernel, stride, padding, H, W)
POOL_CASES = [
    (2, None, 0, 8, 8),
    (2, None, 0, 9, 7),
    (3, 2, 1, 11, 10),
    (3, 1, 1, 5, 6),
    ((2, 3), (1, 2), (1, 1), 7, 9),
    (4, 3, 2, 13, 13),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode", ["max", "mean"])
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: "-".join(map(str, c)))
def test_pooling_matches_torch(case, mode, dtype):
    torch.manual_seed(6)
    k, s, p, H, W = case
    ref_cls = nn.MaxPool2d if mode == "max" else nn.AvgPool2d
    ref = ref_cls(k, s, p)  # AvgPool2d counts the padding (count_include_pad=True)
    _check_grads(ref, Pooling(k, s, p, mode=mode), (2, 3, H, W), dtype)


def test_max_pooling_ties_send_the_gradient_to_the_first_maximum():
    """After a ReLU whole windows are 0: torch gives the gradient to one of them."""
    x_ref = torch.zeros(1, 1, 4, 4, requires_grad=True)
    x_mine = torch.zeros(1, 1, 4, 4, requires_grad=True)
    nn.MaxPool2d(2)(x_ref).sum().backward()
    Pooling(2)(x_mine).sum().backward()
    torch.testing.assert_close(x_mine.grad, x_ref.grad, atol=0, rtol=0)
    assert x_mine.grad.sum() == 4


def test_pooling_unbatched_and_bad_arguments():
    x = torch.randn(3, 6, 6)
    torch.testing.assert_close(Pooling(2, mode="mean")(x), nn.AvgPool2d(2)(x))
    with pytest.raises(ValueError, match="mode"):
        Pooling(2, mode="median")
    with pytest.raises(ValueError, match="at most half"):
        Pooling(2, padding=2)
    with pytest.raises(ValueError, match="smaller than"):
        Pooling(5)(torch.randn(1, 1, 3, 3))


def test_repr_shows_the_hyper_parameters():
    text = repr(Convolution(3, 8, 3, padding=1, groups=1, bias=False))
    assert "3, 8, kernel_size=(3, 3)" in text and "bias=False" in text
    assert "mode='mean'" in repr(Pooling(2, mode="mean"))
