"""toytorch: neural-network layers from scratch on torch tensors and autograd."""

__version__ = "0.1.0"
