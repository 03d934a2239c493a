"""scratchgpt: a ChatGPT-like system built from scratch.

Layers (data flows one way): autograd -> ops -> nn -> models -> optim -> train -> infer -> serve.

Importing the package applies two process-wide CPU settings (``scratchgpt.runtime``): idle
OpenMP threads sleep instead of spinning (they must be set before Numba's first parallel
kernel, hence here), and freed activation buffers are reused by malloc. Measured: up to ~4x on
a small-model training step on 2 cores. Values you set yourself win;
``SCRATCHGPT_THREAD_TUNING=0`` / ``SCRATCHGPT_MALLOC_TUNING=0`` switch them off.
"""
from .runtime import tune_runtime as _tune_runtime

__version__ = "0.1.0"

_tune_runtime()

# after the runtime settings (Numba reads them when it starts its threads); gives Tensor its
# operators (see ops/__init__.py)
from . import ops as _ops  # noqa: E402,F401

