"""scratchgpt: a ChatGPT-like system built from scratch.

Layers (data flows one way): autograd -> ops -> nn -> models -> optim -> train -> infer -> serve.
"""
__version__ = "0.1.0"
