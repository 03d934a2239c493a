"""Tensor: a NumPy array that remembers how it was made, so gradients can flow back.

A Tensor holds
  - ``data``: the values, a NumPy array (float32 by default; float64 is kept as is so
    gradient checks can run the very same code in double precision),
  - ``grad``: the accumulated gradient dL/d(data), same shape, or None,
  - ``requires_grad``: whether backward should compute ``grad`` for it,
  - ``_ctx``: for a Tensor produced by a Function, the node (function, context, parents).

``backward`` walks the graph in a deterministic topological order built with an explicit
stack (no recursion, so a 1000-layer graph does not hit Python's recursion limit; lists,
not sets, so the order — and thus float summation order — is the same every run).
"""
from __future__ import annotations

import numpy as np

from ..backend import array_device, device_of, is_device_array

_FLOAT_DTYPES = (np.float16, np.float32, np.float64)


def _as_array(data, dtype=None) -> np.ndarray:
    if isinstance(data, Tensor):
        data = data.data
    if array_device(data) == "cuda":
        # a GPU array stays where it is (np.asarray would copy it to the host, or fail)
        if dtype is not None and np.dtype(dtype) != data.dtype:
            raise TypeError(f"cannot change the dtype of a GPU array here ({data.dtype} -> {np.dtype(dtype)})")
        return data
    if dtype is not None:
        return np.asarray(data, dtype=dtype)
    arr = np.asarray(data)
    if arr.dtype.type not in _FLOAT_DTYPES:
        arr = arr.astype(np.float32)
    return arr


# The engine's four array operations, on the device of the arrays. A GPU gradient stays on the
# GPU: cuda_arrays (imported only once a GPU array exists) adds and copies it there.
def _gpu():
    from .. import cuda_arrays
    return cuda_arrays


def _ones_like(a):
    return _gpu().full_like(a, 1) if is_device_array(a) else np.ones_like(a)


def _copy(g, dtype):
    if not is_device_array(g):
        return np.array(g, dtype=dtype, copy=True)
    if g.dtype != dtype:
        raise TypeError(f"GPU gradient of dtype {g.dtype} for a {np.dtype(dtype)} tensor")
    return _gpu().copy(g)


def _add_into(a, b):
    if not (is_device_array(a) or is_device_array(b)):
        np.add(a, b, out=a)
    else:
        _gpu().add_into(a, b)


def _add(a, b):
    if not (is_device_array(a) or is_device_array(b)):
        return a + b
    return _gpu().add(a, b)


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting added or stretched to reach ``shape``.

    If y = x + b with b of shape (C,) broadcast to (B, T, C), then dL/db = sum over B, T of dL/dy.
    """
    if grad.shape == tuple(shape):
        return grad
    if is_device_array(grad):
        raise ValueError(f"a GPU op returned a gradient of shape {grad.shape} for an input of shape "
                         f"{tuple(shape)}: CUDA ops reduce their own broadcasts")
    ndim_extra = grad.ndim - len(shape)
    if ndim_extra < 0:
        raise ValueError(f"gradient of shape {grad.shape} cannot reduce to {shape}")
    if ndim_extra:
        grad = grad.sum(axis=tuple(range(ndim_extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    if grad.shape != tuple(shape):
        raise ValueError(f"gradient of shape {grad.shape} does not match tensor shape {tuple(shape)}")
    return grad


class Tensor:
    __slots__ = ("data", "grad", "requires_grad", "_ctx", "name", "_retain", "_on_grad", "__weakref__")

    # Make NumPy defer to our operators in ``ndarray + Tensor``.
    __array_priority__ = 1000

    def __init__(self, data, requires_grad: bool = False, dtype=None, name: str | None = None):
        self._init(_as_array(data, dtype), bool(requires_grad), name, None)

    @classmethod
    def _from_op(cls, data, node) -> "Tensor":
        """The output of a Function (``Function.apply``): ``data`` as the op made it, no conversion;
        ``node`` = (implementation, ctx, parents) when a graph is recorded, else None."""
        t = cls.__new__(cls)
        t._init(data, node is not None, None, node)
        return t

    def _init(self, data, requires_grad: bool, name, node) -> None:
        self.data: np.ndarray = data
        self.grad: np.ndarray | None = None
        self.requires_grad = requires_grad
        self._ctx = node  # (implementation, ctx, parents) when produced by a Function
        self.name = name
        self._retain = False
        self._on_grad = None  # called as fn(tensor) once backward has finished this leaf's .grad

    # ------------------------------------------------------------------ basics
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def device(self) -> str:
        return device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self) -> float:
        # a GPU scalar (the loss) is copied to the host here: the one transfer per step
        return self.data.copy_to_host().item() if is_device_array(self.data) else self.data.item()

    def detach(self) -> "Tensor":
        return Tensor(self.data, requires_grad=False)

    def zero_grad(self) -> None:
        self.grad = None

    def retain_grad(self) -> "Tensor":
        """Keep ``.grad`` on this non-leaf tensor after backward (leaves always keep it)."""
        self._retain = True
        return self

    def on_grad_ready(self, fn) -> None:
        """Call ``fn(self)`` during each ``backward`` right after this leaf's ``.grad`` is complete
        (every term of that pass added), while the rest of the graph is still being differentiated;
        ``None`` removes it. Data-parallel training starts a gradient bucket's allreduce from here."""
        self._on_grad = fn

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        extra = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor(shape={self.shape}, dtype={self.dtype}{extra})"

    # ---------------------------------------------------------------- backward
    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Accumulate dL/dx into ``.grad`` of every leaf that requires grad.

        ``grad`` defaults to 1 for a scalar. Gradients are summed (``+=``) into leaves, so
        calling backward twice without zeroing accumulates — which is what gradient
        accumulation over micro-batches wants.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() called on a tensor that does not require grad")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward() without a gradient needs a scalar, got shape {self.shape}")
            grad = _ones_like(self.data)
        else:
            grad = _as_array(grad, self.data.dtype)
            if grad.shape != self.shape:
                raise ValueError(f"gradient shape {grad.shape} != tensor shape {self.shape}")

        order = _topological_order(self)
        grads: dict[int, np.ndarray] = {id(self): grad}
        # ids of the nodes whose pending gradient is a sum this engine allocated (prev + pg):
        # no one else holds a reference to such an array until its node is popped, so further
        # terms can be added into it in place. Every other array (what a backward returned) may
        # alias another node's buffer, a cached array or the caller's data: never written to.
        owned: set[int] = set()
        for node in reversed(order):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            g_owned = id(node) in owned
            owned.discard(id(node))
            if node._ctx is None or node._retain:
                # a leaf (parameter/input) or a tensor asked to keep its grad
                if node.grad is None:
                    if g_owned and node._ctx is None and g.dtype == node.data.dtype:
                        node.grad = g       # the engine's own sum, seen by no one else: no copy
                    else:
                        node.grad = _copy(g, node.data.dtype)
                else:
                    _add_into(node.grad, g)
            if node._ctx is None:
                if node._on_grad is not None:
                    node._on_grad(node)
                continue
            fn, ctx, parents = node._ctx
            in_grads = fn.backward(ctx, g)
            if not isinstance(in_grads, tuple):
                in_grads = (in_grads,)
            if len(in_grads) != len(parents):
                raise RuntimeError(
                    f"{fn.__name__}.backward returned {len(in_grads)} gradients for {len(parents)} inputs"
                )
            for p, pg in zip(parents, in_grads):
                if p is None or pg is None or not p.requires_grad:
                    continue
                if pg.shape != p.data.shape:
                    pg = unbroadcast(pg, p.data.shape)
                prev = grads.get(id(p))
                if prev is None:
                    grads[id(p)] = pg
                elif (id(p) in owned and prev.shape == pg.shape
                      and np.result_type(prev.dtype, pg.dtype) == prev.dtype):
                    _add_into(prev, pg)  # our own sum buffer: accumulate in place
                else:
                    # a returned array may be another node's buffer: sum into a new array
                    grads[id(p)] = _add(prev, pg)
                    owned.add(id(p))
            if not retain_graph:
                node._ctx = None  # free the saved activations as soon as they are used

    # Operators (+ - * / @ [] sum mean reshape transpose .T) are attached by scratchgpt.ops, which
    # sits above autograd: see ops/__init__.py. ``import scratchgpt`` loads it.


def _topological_order(root: Tensor) -> list:
    """Return every tensor that ``root`` depends on (and that requires grad), parents first.

    Iterative post-order DFS. Visiting parents in their argument order makes the order —
    and so the order gradients are summed — deterministic.
    """
    order: list = []
    visited: set[int] = set()  # ids only: membership test, the order comes from the stack
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        if node._ctx is not None:
            for p in reversed(node._ctx[2]):
                if p is not None and p.requires_grad and id(p) not in visited:
                    stack.append((p, False))
    return order


def tensor(data, requires_grad: bool = False, dtype=None) -> Tensor:
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)
