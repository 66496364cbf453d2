"""Neural-network modules: write a model once, build it on any backend.

`Module` finds parameters, buffers and submodules automatically and names them as PyTorch does;
`Model(..., backend=B)` builds a model and every layer it creates on B.
"""

from agnostic.nn import init, utils
from agnostic.nn.activation import (
    ELU,
    GELU,
    LeakyReLU,
    LogSoftmax,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)
from agnostic.nn.bilinear import Bilinear
from agnostic.nn.conv import Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d
from agnostic.nn.dropout import Dropout
from agnostic.nn.linear import Flatten, Identity, Linear, Unflatten
from agnostic.nn.loss import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    KLDivLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
)
from agnostic.nn.module import Module, ModuleDict, ModuleList, Sequential
from agnostic.nn.normalization import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm, RMSNorm
from agnostic.nn.parameter import Parameter
from agnostic.nn.pooling import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AvgPool1d,
    AvgPool2d,
    MaxPool1d,
    MaxPool2d,
)
from agnostic.nn.rnn import GRU, LSTM, GRUCell, LSTMCell
from agnostic.nn.sparse import Embedding
from agnostic.nn.summary import Summary, summary
from agnostic.nn.sync_batchnorm import SyncBatchNorm
from agnostic.nn.transformer import (
    MultiheadAttention,
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)
from agnostic.nn.upsampling import Upsample

__all__ = [
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AvgPool1d", "AvgPool2d", "BatchNorm1d", "BatchNorm2d",
    "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "GroupNorm", "LayerNorm",
    "MaxPool1d", "MaxPool2d", "RMSNorm", "Bilinear", "Upsample", "BCELoss", "BCEWithLogitsLoss",
    "CrossEntropyLoss", "HuberLoss", "KLDivLoss", "L1Loss", "MSELoss", "NLLLoss", "SmoothL1Loss",
    "GRU", "LSTM", "GRUCell", "LSTMCell", "MultiheadAttention", "Transformer", "TransformerDecoder",
    "TransformerDecoderLayer", "TransformerEncoder", "TransformerEncoderLayer",
    "ELU", "GELU", "Dropout", "Embedding", "Flatten", "Identity", "LeakyReLU", "Linear", "LogSoftmax",
    "Module", "ModuleDict", "ModuleList", "Parameter", "ReLU", "Sequential", "SiLU", "Sigmoid", "Softmax",
    "Softplus", "Summary", "SyncBatchNorm", "Tanh", "Unflatten", "init", "summary", "utils",
]  # fmt: skip
