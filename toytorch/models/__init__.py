"""Language models (Transformer, LSTM) built from toytorch layers, and their registry.

Every model family is registered under an architecture name, so a config stored as a
dict (``config_to_dict``) rebuilds its model (``model_from_config``). Add a family with
``register_arch("name", ConfigClass, ModelClass)`` below.
"""

from toytorch.models.base import (
    ARCHS,
    LanguageModel,
    config_from_dict,
    config_to_dict,
    lm_loss,
    model_from_config,
    register_arch,
    unwrap_model,
)
from toytorch.models.cnn import ConvClassifier, ConvConfig
from toytorch.models.lstm import LSTMConfig, LSTMLanguageModel
from toytorch.models.transformer import TransformerConfig, TransformerLanguageModel

register_arch("transformer", TransformerConfig, TransformerLanguageModel)
register_arch("lstm", LSTMConfig, LSTMLanguageModel)
register_arch("cnn", ConvConfig, ConvClassifier)

__all__ = [
    "ARCHS",
    "LSTMConfig",
    "LSTMLanguageModel",
    "LanguageModel",
    "TransformerConfig",
    "TransformerLanguageModel",
    "config_from_dict",
    "config_to_dict",
    "lm_loss",
    "model_from_config",
    "register_arch",
    "unwrap_model",
]
__all__ += ["ConvClassifier", "ConvConfig"]
