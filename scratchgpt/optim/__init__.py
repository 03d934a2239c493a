"""Optimizers (SGD, Adam, AdamW), parameter groups, the LR schedule and gradient clipping.

Gradient accumulation needs no special support: backward *adds* into ``.grad``, so K
micro-batches whose losses are each divided by K, followed by one ``step()`` and one
``zero_grad()``, give the update of one K-times-larger batch (tests/test_optim.py checks it).
"""
from .adam import Adam, AdamW
from .clip import clip_grad_norm
from .groups import decay_groups, is_embedding_name, should_decay
from .optimizer import Optimizer
from .schedule import lr_schedule
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "lr_schedule", "clip_grad_norm", "decay_groups",
           "is_embedding_name", "should_decay"]
