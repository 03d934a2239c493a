"""Next-token sampling: greedy, temperature, top-k, top-p, min-p and history penalties.

``sample`` is the Cython sampler, ``sample_ref`` the readable NumPy one; for the same logits,
settings and seed they return the same token. ``distribution_ref`` returns the distribution
both draw from. See ``sample_ref``'s module docstring for the exact pipeline.
"""
from ._checks import GREEDY_TEMPERATURE
from .sample_ref import distribution_ref, sample_ref

try:
    from ._sampler import sample
except ImportError as e:  # extension not built: say how, instead of a bare ImportError later
    _err = e

    def sample(*args, **kwargs):
        raise ImportError(
            "scratchgpt.sampling._sampler is not built; run `python setup.py build_ext --inplace` "
            f"in the repository root ({_err})")

__all__ = ["sample", "sample_ref", "distribution_ref", "GREEDY_TEMPERATURE"]
