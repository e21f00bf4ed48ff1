"""Basic layers, drop-in twins of torch.nn: Linear, Embedding, Dropout, LayerNorm.

Each takes the constructor arguments of its torch.nn twin (device and dtype included),
has the same parameter names and state_dict keys, draws its initial values from the
same distributions, and computes the same forward and gradients. Embedding and
LayerNorm are single ``torch.autograd.Function`` nodes with hand-written backward passes
(checked by gradcheck in the tests): at the small sizes of a lyric model the autograd
overhead per operation, not the arithmetic, dominates a CPU training step.
"""

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from toytorch import func


def _factory(device, dtype) -> dict:
    return {"device": device, "dtype": dtype}


class Linear(nn.Module):
    r"""Affine map ``y = x W^T + b``, twin of ``nn.Linear``.

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
        bias: learn an additive bias. Default: ``True``.
        device, dtype: where and in what precision to create the parameters.

    Shape:
        - Input: ``(*, in_features)``, any number of leading dimensions.
        - Output: ``(*, out_features)``.

    Attributes:
        weight: ``(out_features, in_features)``, initialised from
            ``U(-1/sqrt(in_features), 1/sqrt(in_features))`` (torch's
            ``kaiming_uniform_(a=sqrt(5))`` reduces to this).
        bias: ``(out_features,)``, from the same distribution.

    Example::

        >>> layer = Linear(20, 30)
        >>> layer(torch.randn(128, 20)).shape
        torch.Size([128, 30])
    """

    in_features: int
    out_features: int

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        kw = _factory(device, dtype)
        self.weight = nn.Parameter(torch.empty(out_features, in_features, **kw))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features, **kw))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
        with torch.no_grad():
            self.weight.uniform_(-bound, bound)
            if self.bias is not None:
                self.bias.uniform_(-bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        if self.bias is None:
            return x.matmul(self.weight.t())
        if x.dim() == 2:
            return torch.addmm(self.bias, x, self.weight.t())  # (N, out), one kernel
        # Fold the leading dimensions into one so the bias add fuses into the matmul
        y = torch.addmm(self.bias, x.reshape(-1, self.in_features), self.weight.t())
        return y.view(*x.shape[:-1], self.out_features)  # (*, out)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class _EmbeddingFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weight, flat_ids, padding_idx, scale_grad_by_freq):
        ctx.save_for_backward(flat_ids)
        ctx.num_embeddings = weight.shape[0]
        ctx.padding_idx, ctx.scale_grad_by_freq = padding_idx, scale_grad_by_freq
        return weight.index_select(0, flat_ids)  # (M, D)

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        (ids,) = ctx.saved_tensors
        if ctx.scale_grad_by_freq:  # each row's gradient divided by its count
            counts = torch.bincount(ids, minlength=ctx.num_embeddings)
            g = g / counts[ids].unsqueeze(1).to(g.dtype)
        if ctx.padding_idx is not None:  # the padding row receives no gradient
            g = g * (ids != ctx.padding_idx).unsqueeze(1)
        dw = g.new_zeros(ctx.num_embeddings, g.shape[1])
        return dw.index_add_(0, ids, g), None, None, None


class Embedding(nn.Module):
    r"""Lookup table of vectors, twin of ``nn.Embedding``.

    Args:
        num_embeddings: size of the dictionary.
        embedding_dim: size of each vector.
        padding_idx: if given, row ``padding_idx`` starts at zero and never receives a
            gradient. Negative values count from the end. Default: ``None``.
        max_norm: if given, each looked-up row whose ``norm_type``-norm exceeds it is
            rescaled in place to norm ``max_norm`` before the lookup (as torch).
        norm_type: the p of the p-norm for ``max_norm``. Default: 2.0.
        scale_grad_by_freq: divide each row's gradient by how often its index occurs in
            the batch. Default: ``False``.
        sparse: sparse gradients are not supported; ``True`` raises ValueError.
        _weight: optional initial ``(num_embeddings, embedding_dim)`` weight.
        _freeze: with ``_weight``, keep the weight fixed (``requires_grad=False``).
        device, dtype: where and in what precision to create the weight.

    Shape:
        - Input: ``(*)``, int64 indices in ``[0, num_embeddings)``.
        - Output: ``(*, embedding_dim)``.

    Attributes:
        weight: ``(num_embeddings, embedding_dim)``, initialised from ``N(0, 1)``.
    """

    num_embeddings: int
    embedding_dim: int
    padding_idx: int | None

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        max_norm: float | None = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
        _weight: Tensor | None = None,
        _freeze: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if sparse:
            raise ValueError("sparse=True is not supported: gradients are dense")
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = self._check_padding_idx(padding_idx)
        self.max_norm, self.norm_type = max_norm, norm_type
        self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, sparse
        if _weight is None:
            kw = _factory(device, dtype)
            self.weight = nn.Parameter(torch.empty(num_embeddings, embedding_dim, **kw))
            self.reset_parameters()
        else:
            if tuple(_weight.shape) != (num_embeddings, embedding_dim):
                raise ValueError(
                    f"_weight must have shape ({num_embeddings}, {embedding_dim}), "
                    f"got {tuple(_weight.shape)}"
                )
            self.weight = nn.Parameter(_weight, requires_grad=not _freeze)

    def _check_padding_idx(self, padding_idx: int | None) -> int | None:
        if padding_idx is None:
            return None
        n = self.num_embeddings
        if not -n <= padding_idx < n:
            raise ValueError(f"padding_idx must be in [-{n}, {n}), got {padding_idx}")
        return padding_idx + n if padding_idx < 0 else padding_idx

    @classmethod
    def from_pretrained(cls, embeddings: Tensor, freeze: bool = True, **kwargs):
        """An Embedding holding ``embeddings`` (2-D) as its weight."""
        if embeddings.dim() != 2:
            raise ValueError(
                f"embeddings must be 2-D, got shape {tuple(embeddings.shape)}"
            )
        rows, cols = embeddings.shape
        return cls(rows, cols, _weight=embeddings, _freeze=freeze, **kwargs)

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight.normal_(0.0, 1.0)
            if self.padding_idx is not None:
                self.weight[self.padding_idx].fill_(0.0)

    def forward(self, ids: Tensor) -> Tensor:
        if ids.dtype not in (torch.long, torch.int):
            raise ValueError(f"ids must be an integer tensor, got dtype {ids.dtype}")
        flat = ids.reshape(-1).long()
        if self.max_norm is not None:
            self._renorm(flat)
        out = _EmbeddingFn.apply(
            self.weight, flat, self.padding_idx, self.scale_grad_by_freq
        )
        return out.view(*ids.shape, self.embedding_dim)  # (*, D)

    @torch.no_grad()
    def _renorm(self, flat: Tensor) -> None:
        """Shrink, in place, the looked-up rows whose norm exceeds max_norm."""
        rows = flat.unique()
        norms = self.weight[rows].norm(p=self.norm_type, dim=1)
        scale = (self.max_norm / (norms + 1e-7)).clamp_max(1.0)  # 1 where within norm
        scale = torch.where(norms > self.max_norm, scale, torch.ones_like(scale))
        self.weight[rows] *= scale.unsqueeze(1)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        if self.norm_type != 2.0:
            s += f", norm_type={self.norm_type}"
        if self.scale_grad_by_freq:
            s += ", scale_grad_by_freq=True"
        return s


class Dropout(nn.Module):
    r"""Zeroes each element with probability ``p`` in training, twin of ``nn.Dropout``.

    The kept elements are scaled by ``1 / (1 - p)`` so the expected value is unchanged;
    in eval mode (or with ``p == 0``) the input passes through untouched. The random
    mask is drawn with ``bernoulli_`` on the input's device, so it follows the torch
    seed but is not the same mask torch's own kernel would draw.

    Args:
        p: probability of zeroing an element, in [0, 1]. Default: 0.5.
        inplace: overwrite the input instead of allocating the output. Default: False.

    Shape:
        - Input: ``(*)``.
        - Output: ``(*)``, same shape as the input.
    """

    p: float
    inplace: bool

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability p must be in [0, 1], got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, x: Tensor) -> Tensor:
        return func.dropout(x, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class _LayerNormFn(torch.autograd.Function):
    """Layer normalisation of (M, D) rows, optional affine; one autograd node."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        # Centre first, then average the squares: var(x) = E[x^2] - E[x]^2 would lose
        # every digit for rows with a large common offset (x + 1e4 in float32).
        # Subtle: even the mean of such a row is only good to an ulp of the offset,
        # so shift each row by its own first entry before averaging: x - x0 is exact
        # there (two nearby floats), and in any row it errs by at most an ulp of the
        # row's range, so the mean of the shifted row is good to the row's spread, not
        # to its offset. (One reduction fewer than centring twice.)
        D = x.shape[1]
        xc = x - x[:, :1]  # (M, D), shifted by each row's first entry
        xc.sub_(xc.mean(1, keepdim=True))  # centred, in place: xc is ours
        # ||xc||^2 / D is E[xc^2] in one pass, without an (M, D) temporary
        norm = torch.linalg.vector_norm(xc, dim=1, keepdim=True)  # (M, 1)
        rstd = norm.square_().div_(D).add_(eps).rsqrt_()  # (M, 1)
        xhat = xc.mul_(rstd)  # (M, D)
        if weight is not None:
            y = xhat * weight if bias is None else torch.addcmul(bias, xhat, weight)
        else:
            y = xhat if bias is None else xhat + bias
        ctx.save_for_backward(xhat, rstd, weight)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        xhat, rstd, weight = ctx.saved_tensors
        D = xhat.shape[1]
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gxhat = g * xhat  # (M, D)
        dw = gxhat.sum(0) if need_w else None
        db = g.sum(0) if need_b else None
        if not need_x:
            return None, dw, db, None

        # With gx = g w (the gradient reaching xhat):
        #   dx = rstd (gx - mean(gx) - xhat mean(gx xhat))
        # both means are mat-vec products against w: no (M, D) temporaries for them.
        if weight is None:
            mean_gx, mean_gxx = g.mean(1, keepdim=True), gxhat.mean(1, keepdim=True)
            dx = torch.sub(g, mean_gx, out=gxhat)
        else:
            w_mean = (weight / D).unsqueeze(1)  # (D, 1): a matmul gives (M, 1) means
            mean_gx, mean_gxx = g.mm(w_mean), gxhat.mm(w_mean)  # (M, 1) each
            dx = torch.mul(g, weight, out=gxhat).sub_(mean_gx)
        # dx reuses gxhat's memory (done with it): a fresh (M, D) block costs page
        # faults on CPU. All in place, and no out-of-place addcmul with an (M, 1)
        # operand: on CPU that broadcast takes a slow, unvectorised path.
        return dx.addcmul_(xhat, mean_gxx, value=-1.0).mul_(rstd), dw, db, None


class LayerNorm(nn.Module):
    r"""Normalises the last dimensions to zero mean and unit variance, twin of
    ``nn.LayerNorm``: ``y = (x - E[x]) / sqrt(Var[x] + eps) * weight + bias``, with the
    biased variance, over the trailing ``normalized_shape`` dimensions.

    Args:
        normalized_shape: an int or a tuple of trailing dimension sizes.
        eps: added to the variance for stability. Default: 1e-5.
        elementwise_affine: learn per-element ``weight`` (and ``bias``). Default: True.
        bias: learn ``bias`` too (only with ``elementwise_affine``). Default: True.
        device, dtype: where and in what precision to create the parameters.

    Shape:
        - Input: ``(*, *normalized_shape)``.
        - Output: the input's shape.

    Attributes:
        weight: ``normalized_shape``, initialised to ones.
        bias: ``normalized_shape``, initialised to zeros.
    """

    normalized_shape: tuple[int, ...]
    eps: float
    elementwise_affine: bool

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(int(n) for n in normalized_shape)
        if len(self.normalized_shape) == 0:
            raise ValueError("normalized_shape must name at least one dimension")
        self.eps, self.elementwise_affine = eps, elementwise_affine
        kw = _factory(device, dtype)
        if elementwise_affine:
            self.weight = nn.Parameter(torch.empty(self.normalized_shape, **kw))
            b = nn.Parameter(torch.empty(self.normalized_shape, **kw)) if bias else None
            self.register_parameter("bias", b)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            if self.weight is not None:
                self.weight.fill_(1.0)
            if self.bias is not None:
                self.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        k = len(self.normalized_shape)
        if tuple(x.shape[x.dim() - k :]) != self.normalized_shape:
            raise ValueError(
                f"input shape {tuple(x.shape)} does not end with normalized_shape "
                f"{self.normalized_shape}"
            )
        D = math.prod(self.normalized_shape)
        w, b = self.weight, self.bias
        if k > 1:  # the Function sees (D,) parameters
            w = None if w is None else w.reshape(D)
            b = None if b is None else b.reshape(D)
        y = _LayerNormFn.apply(x.reshape(-1, D), w, b, self.eps)  # (M, D)
        return y.view(x.shape)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, "
            f"elementwise_affine={self.elementwise_affine}, "
            f"bias={self.bias is not None}"
        )
