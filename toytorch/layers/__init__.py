"""Layers written from scratch, drop-in twins of their torch.nn namesakes."""

from toytorch.layers.attention import KVCache, MultiheadAttention
from toytorch.layers.basic import Dropout, Embedding, LayerNorm, Linear
from toytorch.layers.conv import Convolution, Pooling
from toytorch.layers.lstm import LSTM
from toytorch.layers.positional import PositionalEncoding
from toytorch.layers.transformer import TransformerDecoderLayer, TransformerEncoderLayer

__all__ = ["Dropout", "Embedding", "LSTM", "LayerNorm", "Linear"]
__all__ += ["Convolution", "Pooling"]
__all__ += ["KVCache", "MultiheadAttention", "PositionalEncoding"]
__all__ += ["TransformerDecoderLayer", "TransformerEncoderLayer"]
