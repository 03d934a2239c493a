"""Optimizer: the bookkeeping every update rule shares.

An optimizer holds *parameter groups*: a list of dicts, each with a ``"params"`` list of
Tensors and that group's hyperparameters (``lr``, ``weight_decay``, ...). Groups let one
optimizer treat parameters differently — the usual use is AdamW with weight decay on the
weight matrices and none on biases, LayerNorm gains and embeddings (see ``decay_groups``).

Subclasses define ``defaults`` (the hyperparameters a group may carry, with default values),
``state_keys`` (the per-parameter arrays they keep, e.g. ``("exp_avg", "exp_avg_sq")``) and
``_update(group, param, grad, state)``.

State is saved without pickle, as
    {"arrays": {name: np.ndarray}, "meta": JSON-able dict}
so a checkpoint can write the arrays with safetensors and the rest as JSON. Array names are
``"<group>.<index>.<key>"`` — positions, not parameter names, because the optimizer only
sees Tensors; ``load_state_dict`` checks group sizes and shapes so a state saved for a
different model fails loudly instead of being applied to the wrong tensors.
"""
from __future__ import annotations

import json
import math
import numbers
from pathlib import Path

import numpy as np

from ..autograd import Tensor
from ..backend import to_device
from ..errors import CheckpointError, ConfigError

# Keys a group may carry besides hyperparameters: "params" and "names" (the parameters'
# dotted names, filled by decay_groups; kept for error messages and the saved meta).
_STRUCTURAL_KEYS = ("params", "names")


class Optimizer:
    defaults: dict = {}
    state_keys: tuple = ()

    def __init__(self, params_or_groups, **hyper):
        unknown = sorted(set(hyper) - set(self.defaults))
        if unknown:
            raise ConfigError(f"{type(self).__name__}: unknown hyperparameter(s) {unknown}; "
                              f"expected some of {sorted(self.defaults)}")
        base = {**self.defaults, **hyper}
        self._check_hyper(base, where="arguments")
        groups = _as_groups(params_or_groups)
        self.param_groups: list[dict] = []
        seen: set[int] = set()
        for gi, g in enumerate(groups):
            group = {**base, **{k: v for k, v in g.items() if k not in _STRUCTURAL_KEYS}}
            extra = sorted(set(group) - set(self.defaults))
            if extra:
                raise ConfigError(f"{type(self).__name__}: param group {gi} has unknown key(s) {extra}; "
                                  f"expected 'params', 'names' or some of {sorted(self.defaults)}")
            self._check_hyper(group, where=f"param group {gi}")
            params = list(g["params"])
            for pi, p in enumerate(params):
                if not isinstance(p, Tensor):
                    raise ConfigError(f"param group {gi}, entry {pi}: expected a Tensor/Parameter, "
                                      f"got {type(p).__name__}")
                if not p.requires_grad:
                    raise ConfigError(f"param group {gi}, entry {pi}: tensor of shape {p.shape} "
                                      "does not require grad; an optimizer cannot train it")
                if id(p) in seen:
                    raise ConfigError(f"param group {gi}, entry {pi}: the same parameter appears twice")
                seen.add(id(p))
            names = g.get("names")
            if names is not None:
                names = [str(n) for n in names]
                if len(names) != len(params):
                    raise ConfigError(f"param group {gi}: {len(names)} names for {len(params)} params")
            group["params"] = params
            group["names"] = names
            self.param_groups.append(group)
        if not seen:
            raise ConfigError(f"{type(self).__name__} got no parameters to optimize")
        # state[id(param)] -> {"step": int, key: np.ndarray, ...}
        self.state: dict[int, dict] = {}

    # ----------------------------------------------------------------- hooks
    def _check_hyper(self, group: dict, where: str) -> None:
        lr = group.get("lr")
        if not isinstance(lr, numbers.Real) or isinstance(lr, bool) or not lr >= 0.0:
            raise ConfigError(f"{where}: lr must be a number >= 0, got {lr!r}")
        wd = group.get("weight_decay", 0.0)
        if not isinstance(wd, numbers.Real) or isinstance(wd, bool) or not wd >= 0.0:
            raise ConfigError(f"{where}: weight_decay must be a number >= 0, got {wd!r}")

    def _init_state(self, param: Tensor) -> dict:
        state = {"step": 0}
        for key in self.state_keys:
            if isinstance(param.data, np.ndarray):
                state[key] = np.zeros(param.data.shape, dtype=param.data.dtype)
            else:                       # optimizer state lives where the parameter does
                from .. import cuda_arrays
                state[key] = cuda_arrays.zeros(tuple(param.data.shape), param.data.dtype)
        return state

    def _update(self, group: dict, param: Tensor, grad: np.ndarray, state: dict) -> None:  # pragma: no cover
        raise TypeError(f"{type(self).__name__} must define _update(group, param, grad, state)")

    # ------------------------------------------------------------ public API
    def parameters(self):
        for group in self.param_groups:
            yield from group["params"]

    def zero_grad(self) -> None:
        """Drop the gradients (None, not zeros: the next backward then stores its gradient
        without adding it to a buffer of zeros)."""
        for p in self.parameters():
            p.grad = None

    def step(self) -> None:
        """Apply one update to every parameter that has a gradient; others are untouched
        (their moment buffers and step counts do not advance)."""
        for group in self.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if g.shape != p.data.shape:
                    raise ValueError(f"gradient shape {g.shape} != parameter shape {p.data.shape}")
                if isinstance(p.data, np.ndarray) and not p.data.flags.c_contiguous:
                    # updates run on flat views of p.data; a copy would silently drop them
                    p.data = np.ascontiguousarray(p.data)
                state = self.state.get(id(p))
                if state is None:
                    state = self.state[id(p)] = self._init_state(p)
                state["step"] += 1
                self._update(group, p, g, state)

    # ------------------------------------------------------------ save/load
    def state_dict(self) -> dict:
        arrays: dict[str, np.ndarray] = {}
        groups_meta = []
        steps: dict[str, int] = {}
        for gi, group in enumerate(self.param_groups):
            hyper = {k: _jsonable(v) for k, v in group.items() if k not in _STRUCTURAL_KEYS}
            groups_meta.append({
                **hyper,
                "n_params": len(group["params"]),
                "shapes": [list(p.data.shape) for p in group["params"]],
                "names": group["names"],
            })
            for pi, p in enumerate(group["params"]):
                state = self.state.get(id(p))
                if state is None:
                    continue
                steps[f"{gi}.{pi}"] = int(state["step"])
                for key in self.state_keys:
                    a = state[key]
                    arrays[f"{gi}.{pi}.{key}"] = (np.ascontiguousarray(a).copy() if isinstance(a, np.ndarray)
                                                  else a.copy_to_host())
        meta = {"type": type(self).__name__, "state_keys": list(self.state_keys),
                "param_groups": groups_meta, "steps": steps}
        return {"arrays": arrays, "meta": meta}

    def load_state_dict(self, state_dict: dict) -> None:
        try:
            arrays, meta = state_dict["arrays"], state_dict["meta"]
        except (KeyError, TypeError):
            raise CheckpointError("optimizer state must be a dict with 'arrays' and 'meta'") from None
        name = type(self).__name__
        if meta.get("type") != name:
            raise CheckpointError(f"optimizer state was saved by {meta.get('type')!r}, cannot load into {name}")
        groups_meta = meta.get("param_groups", [])
        if len(groups_meta) != len(self.param_groups):
            raise CheckpointError(f"optimizer state has {len(groups_meta)} param groups, "
                                  f"this optimizer has {len(self.param_groups)}")
        new_state: dict[int, dict] = {}
        for gi, (gmeta, group) in enumerate(zip(groups_meta, self.param_groups)):
            params = group["params"]
            if gmeta.get("n_params") != len(params):
                raise CheckpointError(f"param group {gi}: state has {gmeta.get('n_params')} params, "
                                      f"optimizer has {len(params)}")
            for pi, (shape, p) in enumerate(zip(gmeta["shapes"], params)):
                if tuple(shape) != p.data.shape:
                    raise CheckpointError(f"param group {gi}, param {pi} ({_pname(group, pi)}): state shape "
                                          f"{tuple(shape)} != parameter shape {p.data.shape}")
                step = meta.get("steps", {}).get(f"{gi}.{pi}")
                if step is None:
                    continue
                state = {"step": int(step)}
                for key in self.state_keys:
                    aname = f"{gi}.{pi}.{key}"
                    if aname not in arrays:
                        raise CheckpointError(f"optimizer state is missing array {aname!r} "
                                              f"({_pname(group, pi)})")
                    arr = np.asarray(arrays[aname])
                    if arr.shape != p.data.shape:
                        raise CheckpointError(f"optimizer array {aname!r} has shape {arr.shape}, "
                                              f"expected {p.data.shape} ({_pname(group, pi)})")
                    state[key] = np.array(arr, dtype=p.data.dtype, copy=True)
                    if not isinstance(p.data, np.ndarray):
                        state[key] = to_device(state[key], "cuda")
                new_state[id(p)] = state
        # only now, after every check passed, overwrite anything
        for gmeta, group in zip(groups_meta, self.param_groups):
            for k in group:
                if k not in _STRUCTURAL_KEYS and k in gmeta:
                    v = gmeta[k]
                    group[k] = tuple(v) if isinstance(group[k], tuple) else v
        self.state = new_state

    def save(self, path) -> None:
        """Write the state as one safetensors file; the meta travels as JSON in its header."""
        from safetensors.numpy import save_file
        sd = self.state_dict()
        save_file(sd["arrays"], str(path), metadata={"scratchgpt_optimizer": json.dumps(sd["meta"])})

    def load(self, path) -> None:
        from safetensors import safe_open
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"optimizer state file not found: {path}")
        try:
            with safe_open(str(path), framework="numpy") as f:
                header = f.metadata() or {}
                arrays = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as exc:  # safetensors raises its own error types for corrupt files
            raise CheckpointError(f"cannot read optimizer state {path}: {exc}") from exc
        if "scratchgpt_optimizer" not in header:
            raise CheckpointError(f"{path} has no 'scratchgpt_optimizer' metadata; not an optimizer state file")
        self.load_state_dict({"arrays": arrays, "meta": json.loads(header["scratchgpt_optimizer"])})

    def __repr__(self) -> str:
        parts = []
        for gi, g in enumerate(self.param_groups):
            hyper = ", ".join(f"{k}={g[k]}" for k in self.defaults)
            parts.append(f"  group {gi}: {len(g['params'])} params, {hyper}")
        return f"{type(self).__name__}(\n" + "\n".join(parts) + "\n)"


def _as_groups(params_or_groups) -> list[dict]:
    if isinstance(params_or_groups, Tensor):
        raise ConfigError("optimizer expects an iterable of parameters or of param-group dicts, "
                          "got a single Tensor (wrap it in a list)")
    if hasattr(params_or_groups, "parameters") and callable(params_or_groups.parameters):
        raise ConfigError("optimizer got a model; pass model.parameters() or decay_groups(model, ...)")
    items = list(params_or_groups)
    if not items:
        raise ConfigError("optimizer got an empty parameter list")
    if all(isinstance(it, dict) for it in items):
        for gi, g in enumerate(items):
            if "params" not in g:
                raise ConfigError(f"param group {gi} has no 'params' key")
            if isinstance(g["params"], Tensor):
                g = {**g, "params": [g["params"]]}
                items[gi] = g
        return items
    if any(isinstance(it, dict) for it in items):
        raise ConfigError("optimizer expects either all parameters or all param-group dicts, not a mix")
    if all(isinstance(it, tuple) and len(it) == 2 and isinstance(it[1], Tensor) for it in items):
        # named_parameters(): keep the names for error messages
        return [{"params": [p for _, p in items], "names": [n for n, _ in items]}]
    return [{"params": items}]


def _jsonable(v):
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.floating, float)):
        v = float(v)
        if not math.isfinite(v):
            raise ConfigError(f"hyperparameter {v} is not finite; cannot save it")
        return v
    if isinstance(v, (np.integer,)):
        return int(v)
    return v


def _pname(group: dict, pi: int) -> str:
    names = group.get("names")
    return names[pi] if names else "unnamed"
