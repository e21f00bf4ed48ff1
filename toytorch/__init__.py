"""toytorch: neural-network layers written from scratch on torch tensors and autograd."""

__version__ = "0.1.0"
