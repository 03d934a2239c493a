"""Module, Parameter, ModuleList: the bookkeeping that turns ops into models.

A Module remembers its Parameters and sub-Modules in the order they were assigned, so
``named_parameters()`` returns dotted names ("transformer.h.0.attn.c_attn.weight") in a fixed,
documented order. That order is what checkpoints, optimizers and the GPT-2 name table rely on.

Shared (tied) parameters are listed once, under the first name that reaches them — the GPT
output layer reuses ``transformer.wte.weight`` and therefore adds no name of its own.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from ..autograd import Tensor
from ..backend import check_device, to_device, to_host
from ..errors import CheckpointError


class Parameter(Tensor):
    """A Tensor that is a model weight: a leaf that requires grad (unless frozen)."""

    __slots__ = ()

    def __init__(self, data, requires_grad: bool = True, dtype=None, name: str | None = None):
        super().__init__(data, requires_grad=requires_grad, dtype=dtype, name=name)

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.dtype}, requires_grad={self.requires_grad})"


def as_rng(rng) -> np.random.Generator:
    """Accept a Generator, an int seed or None (fresh, unseeded) and return a Generator."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


class Module:
    """Base class. Subclasses assign Parameters/Modules as attributes and define ``forward``."""

    def __init__(self):
        # object.__setattr__ avoids our own __setattr__ before the registries exist
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        params = self.__dict__.get("_parameters")
        if params is None:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() "
                                 f"before assigning {name!r}")
        mods = self.__dict__["_modules"]
        # an attribute can change kind (e.g. a LoRA wrapper replacing a Linear): drop the old entry
        params.pop(name, None)
        mods.pop(name, None)
        if isinstance(value, Parameter):
            params[name] = value
        elif isinstance(value, Module):
            mods[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    # ----------------------------------------------------------------- calling
    def forward(self, *args, **kwargs):  # pragma: no cover - interface
        raise TypeError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # --------------------------------------------------------------- traversal
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        """(dotted name, module) for self and every sub-module, depth first, registration order."""
        seen: set[int] = set()
        stack = [(prefix, self)]
        while stack:
            name, mod = stack.pop()
            if id(mod) in seen:
                continue
            seen.add(id(mod))
            yield name, mod
            children = [(f"{name}.{k}" if name else k, m) for k, m in mod._modules.items()]
            stack.extend(reversed(children))

    def children(self) -> list["Module"]:
        return list(self._modules.values())

    def modules(self) -> list["Module"]:
        return [m for _, m in self.named_modules()]

    def named_parameters(self) -> list[tuple[str, Parameter]]:
        """(dotted name, Parameter) in registration order; a shared Parameter appears once."""
        out = []
        seen: set[int] = set()
        for mod_name, mod in self.named_modules():
            for pname, p in mod._parameters.items():
                if id(p) in seen:
                    continue
                seen.add(id(p))
                out.append((f"{mod_name}.{pname}" if mod_name else pname, p))
        return out

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def num_parameters(self) -> int:
        return int(sum(p.data.size for p in self.parameters()))

    # ------------------------------------------------------------------- modes
    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def requires_grad_(self, flag: bool = True) -> "Module":
        for p in self.parameters():
            p.requires_grad = bool(flag)
        return self

    def to_dtype(self, dtype) -> "Module":
        """Cast every parameter (float64 for gradient checks, float32 to train)."""
        dtype = np.dtype(dtype)
        for p in self.parameters():
            p.data = np.ascontiguousarray(p.data, dtype=dtype)
            p.grad = None
        return self

    def to(self, device: str) -> "Module":
        """Move every parameter to ``device`` ("cpu" or "cuda"); gradients are dropped. On the GPU
        the parameters stay there: ops run their CUDA implementations on them, the optimizer
        updates them in place, and only checkpoints (``state_dict``) copy them back."""
        check_device(device)
        for p in self.parameters():
            p.data = to_device(p.data, device)
            p.grad = None
        return self

    @property
    def device(self) -> str:
        params = self.parameters()
        return params[0].device if params else "cpu"

    def double(self) -> "Module":
        return self.to_dtype(np.float64)

    def float(self) -> "Module":
        return self.to_dtype(np.float32)

    # ------------------------------------------------------------- state dicts
    def state_dict(self) -> dict[str, np.ndarray]:
        """name -> a copy of the parameter's array (copies: a snapshot must not change later)."""
        return {name: (p.data.copy() if isinstance(p.data, np.ndarray) else to_host(p.data))
                for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict, strict: bool = True) -> dict:
        """Copy arrays into the parameters in place (optimizers keep their references).

        Shape mismatches always raise CheckpointError naming the tensor; with ``strict`` a
        missing or unexpected name raises too. Returns {"missing": [...], "unexpected": [...]}.
        """
        own = dict(self.named_parameters())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and missing:
            raise CheckpointError(f"missing tensor {missing[0]!r} in state dict"
                                  + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        if strict and unexpected:
            raise CheckpointError(f"unexpected tensor {unexpected[0]!r} in state dict"
                                  + (f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""))
        for name, p in own.items():
            if name not in state:
                continue
            arr = np.asarray(state[name])
            if arr.shape != p.data.shape:
                raise CheckpointError(f"tensor {name!r}: expected shape {tuple(p.data.shape)}, "
                                      f"found {tuple(arr.shape)}")
            if not np.issubdtype(arr.dtype, np.floating):
                raise CheckpointError(f"tensor {name!r}: expected a float array, found dtype {arr.dtype}")
            if isinstance(p.data, np.ndarray):
                p.data[...] = arr
            else:           # a GPU parameter: copy the checkpoint's values into its device buffer
                p.data.copy_to_device(np.ascontiguousarray(arr, dtype=p.data.dtype))
        return {"missing": missing, "unexpected": unexpected}

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}("]
        for name, m in self._modules.items():
            sub = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {sub}")
        for name, p in self._parameters.items():
            lines.append(f"  {name}: {tuple(p.shape)}")
        lines.append(")")
        return "\n".join(lines) if len(lines) > 2 else f"{type(self).__name__}()"


class ModuleList(Module):
    """An indexable list of sub-modules named "0", "1", ... (GPT-2's ``transformer.h.{i}``)."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module: Module) -> "ModuleList":
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList holds Modules, got {type(module).__name__}")
        setattr(self, str(len(self._modules)), module)
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(list(self._modules.values()))

    def __getitem__(self, i: int) -> Module:
        mods = list(self._modules.values())
        return mods[i]
