"""Neural-network building blocks: Module machinery and the layers GPT-2 is made of."""
from .attention import CausalSelfAttention, CrossAttention
from .block import MLP, Block, DecoderBlock, EncoderBlock
from .layers import Dropout, Embedding, LayerNorm, Linear
from .module import Module, ModuleList, Parameter

__all__ = [
    "Module", "Parameter", "ModuleList", "Linear", "Embedding", "LayerNorm", "Dropout",
    "CausalSelfAttention", "CrossAttention", "MLP", "Block", "EncoderBlock", "DecoderBlock",
]
