"""LSTM, a drop-in twin of ``nn.LSTM`` (unidirectional, no projection).

Per layer the input-to-hidden product of every time step is one matmul before the
loop; the loop does only the recurrence: one ``addmm`` for the hidden-to-hidden
product and one autograd node (``_LSTMCell``, hand-written backward) for the gates.
"""

import math

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from toytorch import func


class _LSTMCell(torch.autograd.Function):
    """Gates and state update of one time step, from the (B, 4H) pre-activations.

    The pre-activation columns are in torch's order: input gate i, forget gate f,
    cell candidate g, output gate o, each H wide.
    """

    @staticmethod
    def forward(ctx, pre: Tensor, c_prev: Tensor):
        H = c_prev.shape[-1]
        act = pre.sigmoid()  # (B, 4H): i, f, o squashed to (0, 1) ...
        act[:, 2 * H : 3 * H] = pre[:, 2 * H : 3 * H].tanh()  # ... g to (-1, 1)
        i, f, g, o = act.chunk(4, 1)  # each (B, H)

        c = torch.addcmul(f * c_prev, i, g)  # c_t = f c_{t-1} + i g
        tanh_c = c.tanh()
        h = o * tanh_c  # h_t = o tanh(c_t)
        ctx.save_for_backward(act, c_prev, tanh_c)
        return h, c

    @staticmethod
    @once_differentiable
    def backward(ctx, gh: Tensor, gc: Tensor):
        act, c_prev, tanh_c = ctx.saved_tensors
        i, f, g, o = act.chunk(4, 1)

        # The cell state gets its gradient from c_t directly and through h_t
        dc = gc + gh * o * (1.0 - tanh_c.square())  # (B, H)
        do = gh * tanh_c

        # Chain each gate through its squashing function:
        # sigmoid' = s (1 - s), tanh' = 1 - t^2
        d_pre = torch.cat(
            (
                dc * g * i * (1.0 - i),  # input gate
                dc * c_prev * f * (1.0 - f),  # forget gate
                dc * i * (1.0 - g.square()),  # cell candidate
                do * o * (1.0 - o),  # output gate
            ),
            dim=1,
        )  # (B, 4H)
        return d_pre, dc * f


class LSTM(nn.Module):
    r"""Multi-layer long short-term memory network, twin of ``nn.LSTM``.

    For each layer and time step, with ``x_t`` the layer's input::

        i = sigmoid(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)
        f = sigmoid(W_if x_t + b_if + W_hf h_{t-1} + b_hf)
        g = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)
        o = sigmoid(W_io x_t + b_io + W_ho h_{t-1} + b_ho)
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(c_t)

    Not supported (each raises ValueError): ``bidirectional=True`` and
    ``proj_size > 0``. Dropout between layers uses toytorch's own mask, so with
    ``dropout > 0`` in training mode the output differs from torch's for the same seed.

    Args:
        input_size: features of the input ``x``.
        hidden_size: features of the hidden state ``h``.
        num_layers: stacked LSTM layers. Default: 1.
        bias: learn ``b_ih`` and ``b_hh``. Default: ``True``.
        batch_first: input and output as ``(B, T, *)`` instead of ``(T, B, *)``; the
            states ``(h, c)`` stay ``(num_layers, B, H)``. Default: ``False``.
        dropout: dropout probability on the outputs of every layer but the last
            (training mode only). Default: 0.0.
        bidirectional: must be ``False``.
        proj_size: must be 0.
        device, dtype: where and in what precision to create the parameters.

    Inputs: input, (h_0, c_0)
        - input: ``(T, B, input_size)``, ``(B, T, input_size)`` with ``batch_first``,
          or unbatched ``(T, input_size)``.
        - h_0, c_0: optional ``(num_layers, B, hidden_size)`` (``(num_layers,
          hidden_size)`` unbatched); zeros when omitted.

    Outputs: output, (h_n, c_n)
        - output: ``h_t`` of the last layer for every t, ``(T, B, hidden_size)`` (or
          batch first, or unbatched, as the input).
        - h_n, c_n: the final states of every layer, shaped as h_0.

    Attributes:
        weight_ih_l[k]: ``(4*hidden_size, input_size)`` for k = 0, else
            ``(4*hidden_size, hidden_size)``; rows ordered i, f, g, o.
        weight_hh_l[k]: ``(4*hidden_size, hidden_size)``.
        bias_ih_l[k], bias_hh_l[k]: ``(4*hidden_size,)``.
        All initialised from ``U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))``.
    """

    input_size: int
    hidden_size: int
    num_layers: int
    bias: bool
    batch_first: bool
    dropout: float

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        _check_args(hidden_size, num_layers, dropout, bidirectional, proj_size)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.num_layers, self.bias = num_layers, bias
        self.batch_first, self.dropout = batch_first, dropout
        self.bidirectional, self.proj_size = bidirectional, proj_size

        kw = {"device": device, "dtype": dtype}
        G = 4 * hidden_size
        for k in range(num_layers):  # registration order = torch's state_dict order
            n_in = input_size if k == 0 else hidden_size
            setattr(self, f"weight_ih_l{k}", nn.Parameter(torch.empty(G, n_in, **kw)))
            setattr(
                self, f"weight_hh_l{k}", nn.Parameter(torch.empty(G, hidden_size, **kw))
            )
            if bias:
                setattr(self, f"bias_ih_l{k}", nn.Parameter(torch.empty(G, **kw)))
                setattr(self, f"bias_hh_l{k}", nn.Parameter(torch.empty(G, **kw)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-bound, bound)

    def forward(
        self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        if input.dim() not in (2, 3):
            raise ValueError(
                f"input must be 2-D (unbatched) or 3-D, got shape {tuple(input.shape)}"
            )
        unbatched = input.dim() == 2
        x = input.unsqueeze(1) if unbatched else input
        if self.batch_first and not unbatched:
            x = x.transpose(0, 1)  # (T, B, C), time-major for the loop
        h0, c0 = self._initial_state(x, hx, unbatched)

        h_n, c_n = [], []
        for k in range(self.num_layers):
            if k > 0:  # dropout between layers, not after the last
                x = func.dropout(x, self.dropout, self.training)
            x, (h, c) = self._layer(k, x, h0[k], c0[k])
            h_n.append(h)
            c_n.append(c)
        h_n, c_n = torch.stack(h_n), torch.stack(c_n)  # (L, B, H)

        if unbatched:
            return x.squeeze(1), (h_n.squeeze(1), c_n.squeeze(1))
        if self.batch_first:
            x = x.transpose(0, 1)  # (B, T, H)
        return x, (h_n, c_n)

    def _layer(self, k: int, x: Tensor, h: Tensor, c: Tensor):
        """Run layer k over time-major x (T, B, C); return (T, B, H) and (h_T, c_T)."""
        T, B, C = x.shape
        w_ih, w_hh = getattr(self, f"weight_ih_l{k}"), getattr(self, f"weight_hh_l{k}")

        # Input-to-hidden for every step at once, both biases folded in: (T*B, 4H)
        x2 = x.reshape(T * B, C)
        if self.bias:
            b = getattr(self, f"bias_ih_l{k}") + getattr(self, f"bias_hh_l{k}")
            x_proj = torch.addmm(b, x2, w_ih.t())
        else:
            x_proj = x2 @ w_ih.t()

        # The recurrence: unbind (not x_proj[t]) so backward stacks the step
        # gradients once instead of scattering each into a full-size zero tensor
        w_hh_t = w_hh.t()  # (H, 4H)
        outputs = []
        for x_t in x_proj.view(T, B, -1).unbind(0):  # each (B, 4H)
            h, c = _LSTMCell.apply(torch.addmm(x_t, h, w_hh_t), c)
            outputs.append(h)
        if not outputs:
            return x_proj.new_zeros(0, B, self.hidden_size), (h, c)
        return torch.stack(outputs), (h, c)  # (T, B, H)

    def _initial_state(self, x: Tensor, hx, unbatched: bool):
        """(h0, c0) as (L, B, H), zeros of x's device and dtype when hx is None."""
        L, B, H = self.num_layers, x.shape[1], self.hidden_size
        if hx is None:
            zeros = x.new_zeros(L, B, H)
            return zeros, zeros
        h0, c0 = hx
        want = (L, H) if unbatched else (L, B, H)
        for name, s in (("h_0", h0), ("c_0", c0)):
            if tuple(s.shape) != want:
                raise ValueError(f"{name} must have shape {want}, got {tuple(s.shape)}")
        if unbatched:
            return h0.unsqueeze(1), c0.unsqueeze(1)
        return h0, c0

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        return s


def _check_args(hidden_size, num_layers, dropout, bidirectional, proj_size) -> None:
    if bidirectional:
        raise ValueError("bidirectional=True is not supported by toytorch's LSTM")
    if proj_size != 0:
        raise ValueError(f"proj_size must be 0 (no projection), got {proj_size}")
    if hidden_size <= 0:
        raise ValueError(f"hidden_size must be > 0, got {hidden_size}")
    if num_layers <= 0:
        raise ValueError(f"num_layers must be > 0, got {num_layers}")
    if not 0.0 <= dropout <= 1.0:
        raise ValueError(f"dropout must be in [0, 1], got {dropout}")
