"""Functions of the engine, written from scratch on torch tensor operations.

Twins of torch's relu, gelu, sigmoid, dropout, softmax, log_softmax, one_hot and
cross_entropy, plus the cosine learning-rate schedule with a linear warm-up that the
trainer uses.

Why several of them are ``torch.autograd.Function`` classes: on a CPU, at the small
sizes a lyric model has, the time of a training step goes mostly to the per-operation
overhead of autograd, not to arithmetic. Writing the backward by hand lets a whole
function (e.g. log-softmax followed by the negative log-likelihood) be one autograd
node instead of ten, and lets the forward work in place on its own temporaries. Each
hand-written backward is checked with ``torch.autograd.gradcheck`` in float64 and
against torch's own gradients.

The backward passes are written for first derivatives only (``once_differentiable``):
double backward (gradient of a gradient) through them is not supported. Known
shortcoming: ``.backward()`` through a second derivative raises, but
``torch.autograd.grad(..., create_graph=True)`` can return a second derivative that
silently leaves out these functions' part (a wrong value, no error).
"""

import math

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715  # coefficient of x**3 in the tanh approximation of GELU

_REDUCTIONS = ("mean", "sum", "none")


# ---------------------------------------------------------------------------------
# Element-wise activations
# ---------------------------------------------------------------------------------


class _ReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        y = x.clamp_min(0)  # clamp keeps NaN as NaN, like torch.relu
        ctx.save_for_backward(y)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, g: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        # Subtle: the gradient at exactly 0 is 0 (as torch), so test y > 0, not x >= 0.
        return g * (y > 0)


def relu(x: Tensor) -> Tensor:
    """Rectified linear unit, ``max(x, 0)``, with gradient 0 at ``x == 0``."""
    return _ReLU.apply(x)


class _GELU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        # y = x Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2 the standard normal CDF.
        # The derivative dy/dx = Phi(x) + x phi(x), phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
        # is formed here, while Phi(x) is at hand, so backward is one multiply and
        # one tensor stays saved (x itself is not kept). (Not torch.special.ndtr: on
        # CPU it is not vectorised and costs ten times erf.) Two (*) buffers, every
        # other step in place: on CPU a fresh large buffer costs page faults that can
        # outweigh the arithmetic.
        u = x * _INV_SQRT2
        e = torch.addcmul(x.new_zeros(()), u, u, value=-1.0).exp_()  # exp(-x^2 / 2)
        cdf = u.erf_().mul_(0.5).add_(0.5)  # Phi(x), in u's memory
        ctx.save_for_backward(torch.addcmul(cdf, x, e, value=_INV_SQRT_2PI, out=e))
        return cdf.mul_(x)  # y, in u's memory: Phi is no longer needed

    @staticmethod
    @once_differentiable
    def backward(ctx, g: Tensor) -> Tensor:
        (dy_dx,) = ctx.saved_tensors
        return g * dy_dx


class _GELUTanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        # u = sqrt(2/pi) (x + 0.044715 x^3);  y = x (1 + tanh u) / 2
        u = x.square().mul_(_GELU_CUBIC).add_(1.0).mul_(x).mul_(_SQRT_2_OVER_PI)
        t = u.tanh_()
        ctx.save_for_backward(x, t)
        return (t + 1.0).mul_(x).mul_(0.5)

    @staticmethod
    @once_differentiable
    def backward(ctx, g: Tensor) -> Tensor:
        x, t = ctx.saved_tensors
        # dy/dx = (1 + t)/2 + x/2 (1 - t^2) du/dx,  du/dx = sqrt(2/pi)(1 + 3c x^2)
        du = x.square().mul_(3.0 * _GELU_CUBIC).add_(1.0).mul_(_SQRT_2_OVER_PI)
        dy = (1.0 - t.square()).mul_(du).mul_(x).add_(t).add_(1.0).mul_(0.5)
        return dy.mul_(g)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """Gaussian error linear unit, ``x * Phi(x)``, as ``F.gelu``.

    Args:
        x: input of any shape.
        approximate: ``"none"`` for the exact form with ``erf``, ``"tanh"`` for the
            approximation ``x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``.
    """
    if approximate == "none":
        if torch.is_grad_enabled() and x.requires_grad:
            return _GELU.apply(x)
        return x * (x * _INV_SQRT2).erf_().add_(1.0).mul_(0.5)  # no graph needed
    if approximate == "tanh":
        return _GELUTanh.apply(x)
    raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")


class _Sigmoid(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        # 1 / (1 + e^-x) is finite everywhere: e^-x overflows to inf only where the
        # answer is 0 anyway. The gradient below uses y, never e^-x, so it stays finite.
        y = x.neg().exp_().add_(1.0).reciprocal_()
        ctx.save_for_backward(y)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, g: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return (1.0 - y).mul_(y).mul_(g)  # dy/dx = y (1 - y)


def sigmoid(x: Tensor) -> Tensor:
    """Logistic function ``1 / (1 + exp(-x))``; finite with finite gradient."""
    return _Sigmoid.apply(x)


def dropout(x: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)``.

    Identity when ``training`` is False or ``p == 0``. The mask comes from
    ``bernoulli_`` under torch's seed, but it is not the mask torch's own kernel draws.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:  # everything dropped; avoids the 1/(1-p) division by zero
        return x.mul_(0.0) if inplace else x * 0.0
    # mask holds 0 or 1/(1-p): one multiply applies both the drop and the rescale
    mask = torch.empty_like(x).bernoulli_(1.0 - p).div_(1.0 - p)
    return x.mul_(mask) if inplace else x * mask


# ---------------------------------------------------------------------------------
# Softmax family (every one shifted by the maximum along dim, so exp never overflows)
# ---------------------------------------------------------------------------------


class _Softmax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, dim: int, scale: float) -> Tensor:
        # softmax(s x) == softmax(s (x - max x)) for s > 0; the shifted exponent is <= 0
        z = x - x.amax(dim, keepdim=True)
        if scale != 1.0:
            z.mul_(scale)
        y = z.exp_()
        y.div_(y.sum(dim, keepdim=True))
        ctx.save_for_backward(y)
        ctx.dim, ctx.scale = dim, scale
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, g: Tensor):
        (y,) = ctx.saved_tensors
        # Jacobian-vector product: dx = s y (g - sum(g y))
        gy = g * y
        dx = gy.sub_(y * gy.sum(ctx.dim, keepdim=True))
        if ctx.scale != 1.0:
            dx.mul_(ctx.scale)
        return dx, None, None


def softmax(x: Tensor, dim: int = -1, temperature: float = 1.0) -> Tensor:
    """Softmax of ``x / temperature`` along ``dim``, as ``torch.softmax``.

    Rows whose entries are all ``-inf`` (e.g. fully masked attention rows) give NaN, as
    in torch; callers that mask must guard such rows themselves.

    Args:
        x: input of any shape.
        dim: dimension that sums to 1. Default: -1.
        temperature: positive divisor of the logits; below 1 sharpens, above 1 flattens.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return _Softmax.apply(x, dim, 1.0 / temperature)


class _LogSoftmax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, dim: int) -> Tensor:
        z = x - x.amax(dim, keepdim=True)  # shifted: the largest entry is 0
        out = z.sub_(z.exp().sum(dim, keepdim=True).log_())
        ctx.save_for_backward(out)
        ctx.dim = dim
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, g: Tensor):
        (out,) = ctx.saved_tensors
        # dx = g - softmax(x) * sum(g), softmax(x) = exp(out)
        return g - out.exp().mul_(g.sum(ctx.dim, keepdim=True)), None


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """Logarithm of the softmax along ``dim``, as ``torch.log_softmax``; finite at
    logits of any finite size."""
    return _LogSoftmax.apply(x, dim)


def one_hot(ids: Tensor, num_classes: int = -1) -> Tensor:
    """One-hot encoding of integer ids, as ``F.one_hot``.

    Args:
        ids: integer tensor of any shape, values in ``[0, num_classes)``.
        num_classes: length of the new last dimension; -1 means ``ids.max() + 1``.

    Shape:
        ``(*) -> (*, num_classes)``, dtype int64.
    """
    if ids.dtype != torch.long:
        raise ValueError(f"ids must be an int64 tensor, got dtype {ids.dtype}")
    if num_classes == -1:
        num_classes = int(ids.max()) + 1 if ids.numel() else 0
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= num_classes):
        raise ValueError(
            f"ids must lie in [0, {num_classes}), got range "
            f"[{int(ids.min())}, {int(ids.max())}]"
        )
    out = torch.zeros(*ids.shape, num_classes, dtype=torch.long, device=ids.device)
    return out.scatter_(-1, ids.unsqueeze(-1), 1)


# ---------------------------------------------------------------------------------
# Cross-entropy
# ---------------------------------------------------------------------------------
#
# Every variant of F.cross_entropy is one formula over rows i of (M, C) logits:
#
#     loss_i = -sum_c q_ic log p_ic,      p_i = softmax(x_i)
#
# with class-index targets y_i and smoothing eps:
#     q_ic = (1 - eps) w_{y_i} [c == y_i] + (eps / C) w_c      (0 for ignored rows)
# and with probability targets t_ic:
#     q_ic = ((1 - eps) t_ic + eps / C) w_c
#
# (w = 1 without class weights). Its gradient is dloss_i/dx_ic = p_ic Q_i - q_ic with
# Q_i = sum_c q_ic. "mean" divides by sum_i w_{y_i} over the rows not ignored (class
# indices) or by M (probabilities), exactly as torch does.


class _CrossEntropyIndex(torch.autograd.Function):
    """Cross-entropy of (M, C) logits against (M,) class indices; one autograd node."""

    @staticmethod
    def forward(ctx, x, target, weight, ignore_index, eps, reduction):
        M, C = x.shape
        z = x - x.amax(1, keepdim=True)  # (M, C), shifted so exp(z) <= 1
        e = z.exp()
        sum_e = e.sum(1)  # (M,)
        logp = z.sub_(sum_e.log().unsqueeze(1))  # (M, C) log-probabilities

        keep = target != ignore_index  # (M,) rows that count
        y = target.where(keep, 0).unsqueeze(1)  # (M, 1), ignored rows point at class 0
        valid = keep.to(x.dtype)  # 1.0 or 0.0 (a bool would promote to float32)
        w_y = valid if weight is None else weight[y[:, 0]] * valid

        loss = logp.gather(1, y).squeeze(1).mul_(w_y).neg_()  # (M,) weighted NLL
        if eps > 0.0:
            wlogp = logp.sum(1) if weight is None else logp @ weight  # (M,)
            loss.mul_(1.0 - eps).sub_(wlogp.mul_(valid).mul_(eps / C))

        denom = w_y.sum() if reduction == "mean" else None
        ctx.save_for_backward(e, sum_e, y, w_y, valid, weight, denom)
        ctx.eps, ctx.reduction = eps, reduction
        return _reduce(loss, reduction, denom)

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        e, sum_e, y, w_y, valid, weight, denom = ctx.saved_tensors
        eps, C = ctx.eps, e.shape[1]
        g_row = _row_grad_scale(g, e.shape[0], ctx.reduction, denom)  # (M,)

        # dx = p Q - q, each row scaled by its share g_row of the output gradient
        w_sum = float(C) if weight is None else weight.sum()
        Q = (1.0 - eps) * w_y + (eps / C) * w_sum * valid  # (M,)
        dx = e * (Q * g_row / sum_e).unsqueeze(1)  # p Q (not in place: e is saved)
        dx.scatter_add_(1, y, ((eps - 1.0) * w_y * g_row).unsqueeze(1))
        if eps > 0.0:
            w = 1.0 if weight is None else weight.unsqueeze(0)
            dx.sub_((valid * g_row * (eps / C)).unsqueeze(1) * w)
        return dx, None, None, None, None, None


def _reduce(loss: Tensor, reduction: str, denom: Tensor | None) -> Tensor:
    if reduction == "none":
        return loss
    total = loss.sum()
    return total / denom if reduction == "mean" else total


def _row_grad_scale(g: Tensor, M: int, reduction: str, denom) -> Tensor:
    """The gradient each of the M row losses receives from the reduced output."""
    if reduction == "none":
        return g
    scale = g / denom if reduction == "mean" else g
    return scale.expand(M)


def _cross_entropy_probs(x, target, weight, eps, reduction, M):
    """Probability targets (same shape as the (M, C) logits), built from log_softmax."""
    C = x.shape[1]
    q = target if eps == 0.0 else target * (1.0 - eps) + eps / C
    if weight is not None:
        q = q * weight
    loss = -(log_softmax(x, 1) * q).sum(1)  # (M,)
    if reduction == "mean":
        return loss.sum() / M  # NaN for M == 0, as torch
    return loss.sum() if reduction == "sum" else loss


def cross_entropy(
    logits: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross-entropy between logits and targets, as ``F.cross_entropy``.

    Args:
        logits: unnormalised scores, class dimension 1 (or 0 when unbatched).
        target: class indices (int64, the logits' shape without the class dimension) or
            class probabilities (float, the logits' shape).
        weight: optional (C,) rescaling of each class.
        ignore_index: class-index target whose rows do not count (nor in the mean).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        label_smoothing: eps in [0, 1]; the target becomes ``(1 - eps) y + eps / C``.

    Shape:
        logits ``(C)``, ``(N, C)`` or ``(N, C, d1, ..., dk)``; target ``()``, ``(N)`` or
        ``(N, d1, ..., dk)`` for indices, the logits' shape for probabilities; output a
        scalar, or the target's shape without C under ``reduction="none"``.
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    if logits.dim() == 0:
        raise ValueError("logits must have a class dimension, got a 0-d tensor")

    # Move the class dimension last and flatten the rest: (N, C, d..) -> (M, C)
    unbatched = logits.dim() == 1
    x = logits.unsqueeze(0) if unbatched else logits
    C = x.shape[1]
    rest = (x.shape[0], *x.shape[2:])
    x2 = x.movedim(1, -1).reshape(-1, C) if x.dim() > 2 else x  # (M, C)
    if weight is not None and weight.shape != (C,):
        raise ValueError(f"weight must have shape ({C},), got {tuple(weight.shape)}")

    if target.is_floating_point():
        if target.shape != logits.shape:
            raise ValueError(
                f"probability target must have the logits' shape {tuple(logits.shape)},"
                f" got {tuple(target.shape)}"
            )
        t = target.unsqueeze(0) if unbatched else target
        t2 = t.movedim(1, -1).reshape(-1, C) if t.dim() > 2 else t
        loss = _cross_entropy_probs(x2, t2, weight, label_smoothing, reduction, len(x2))
    else:
        want = rest[1:] if unbatched else rest
        if tuple(target.shape) != tuple(want):
            raise ValueError(
                f"class-index target must have shape {tuple(want)}, "
                f"got {tuple(target.shape)}"
            )
        if target.dtype != torch.long:
            raise ValueError(f"class-index target must be int64, got {target.dtype}")
        t2 = target.reshape(-1)
        _check_classes(t2, C, ignore_index)
        loss = _CrossEntropyIndex.apply(
            x2, t2, weight, ignore_index, float(label_smoothing), reduction
        )

    if reduction != "none":
        return loss
    return loss.reshape(()) if unbatched else loss.reshape(rest)


def _check_classes(t: Tensor, C: int, ignore_index: int) -> None:
    """Class indices outside [0, C) would index out of range; say which one.

    Checked on the CPU only: on an accelerator the check would wait for the device at
    every call, so there a bad index fails inside gather instead.
    """
    if t.device.type != "cpu" or t.numel() == 0:
        return
    bad = (t != ignore_index) & ((t < 0) | (t >= C))
    if bool(bad.any()):
        value = int(t[bad][0])
        raise ValueError(f"target holds class index {value}, outside [0, {C})")


# ---------------------------------------------------------------------------------
# Learning-rate schedule
# ---------------------------------------------------------------------------------


def cosine_lr(
    step: int, lr: float, min_lr: float, warmup_steps: int, max_steps: int
) -> float:
    """Learning rate at optimizer step ``step`` (0-based): linear warm-up, then a half
    cosine from ``lr`` down to ``min_lr`` at ``max_steps``, then ``min_lr``.

    The warm-up ramps ``lr * (step + 1) / (warmup_steps + 1)``, so the first step
    already moves the weights. The same values come from torch's
    ``SequentialLR([LinearLR(start_factor=1/(warmup_steps+1), total_iters=warmup_steps),
    CosineAnnealingLR(T_max=max_steps-warmup_steps, eta_min=min_lr)], [warmup_steps])``
    for steps up to ``max_steps``.
    """
    if step < warmup_steps:
        return lr * (step + 1) / (warmup_steps + 1)
    span = max_steps - warmup_steps
    progress = 1.0 if span <= 0 else min(1.0, (step - warmup_steps) / span)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


class CosineWarmup(torch.optim.lr_scheduler.LRScheduler):
    """Cosine learning-rate schedule with linear warm-up and a floor, for torch.optim.

    Each parameter group follows :func:`cosine_lr` from its own initial lr down to
    ``min_lr``. Call ``scheduler.step()`` after each ``optimizer.step()``. Its
    ``state_dict()`` holds plain numbers only (no code), so it saves without pickle.

    Args:
        optimizer: the wrapped optimizer.
        warmup_steps: steps of linear warm-up (>= 0).
        max_steps: step at which the floor is reached (>= warmup_steps).
        min_lr: the floor (>= 0, at most each group's initial lr). Default: 0.0.
        last_epoch: index of the last step taken, -1 for a fresh run.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        warmup_steps: int,
        max_steps: int,
        min_lr: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        if max_steps < warmup_steps:
            raise ValueError(
                f"max_steps must be >= warmup_steps ({warmup_steps}), got {max_steps}"
            )
        if min_lr < 0:
            raise ValueError(f"min_lr must be >= 0, got {min_lr}")
        self.warmup_steps, self.max_steps, self.min_lr = warmup_steps, max_steps, min_lr
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return self._get_closed_form_lr()

    def _get_closed_form_lr(self) -> list[float]:
        step = max(self.last_epoch, 0)
        return [
            cosine_lr(step, base, self.min_lr, self.warmup_steps, self.max_steps)
            for base in self.base_lrs
        ]
