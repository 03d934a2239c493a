"""The autograd engine itself: topological order, accumulation, no_grad, broadcasting."""
import numpy as np
import pytest

from scratchgpt.autograd import Function, Tensor, no_grad, unbroadcast


class Square(Function):
    @staticmethod
    def forward(ctx, x):
        return x * x, x

    @staticmethod
    def backward(ctx, g):
        x = ctx.cache
        return (2 * x * g,)


class AddB(Function):
    """x + b with broadcasting; backward returns the unreduced gradient for b on purpose."""
    @staticmethod
    def forward(ctx, x, b):
        return x + b, None

    @staticmethod
    def backward(ctx, g):
        return g, g


def test_chain_rule_and_accumulation():
    x = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    y = Square.apply(x)
    z = Square.apply(y)  # x^4 -> 4 x^3
    z.backward(np.ones(3, dtype=np.float32))
    np.testing.assert_allclose(x.grad, 4 * x.data ** 3)
    # a second graph accumulates into .grad
    Square.apply(x).backward(np.ones(3, dtype=np.float32))
    np.testing.assert_allclose(x.grad, 4 * x.data ** 3 + 2 * x.data)


def test_diamond_graph_sums_both_paths():
    x = Tensor(np.array([0.5, 2.0]), requires_grad=True)
    y = Square.apply(x)
    z = AddB.apply(y, y)  # 2 x^2
    z.backward(np.ones(2, dtype=np.float32))
    np.testing.assert_allclose(x.grad, 4 * x.data)


def test_broadcast_gradient_is_reduced_to_parameter_shape():
    x = Tensor(np.ones((2, 3, 4)), requires_grad=True)
    b = Tensor(np.zeros(4), requires_grad=True)
    out = AddB.apply(x, b)
    out.backward(np.full((2, 3, 4), 0.5, dtype=np.float32))
    assert b.grad.shape == (4,)
    np.testing.assert_allclose(b.grad, np.full(4, 3.0))


def test_unbroadcast_keepdim_axes():
    g = np.ones((2, 3, 4))
    assert unbroadcast(g, (1, 3, 1)).shape == (1, 3, 1)
    np.testing.assert_allclose(unbroadcast(g, (1, 3, 1)), np.full((1, 3, 1), 8.0))
    with pytest.raises(ValueError):
        unbroadcast(g, (5,))


def test_no_grad_records_nothing():
    x = Tensor(np.ones(3), requires_grad=True)
    with no_grad():
        y = Square.apply(x)
    assert not y.requires_grad and y._ctx is None


def test_deep_graph_has_no_recursion_limit():
    x = Tensor(np.array([1.0]), requires_grad=True)
    y = x
    for _ in range(5000):
        y = AddB.apply(y, np.zeros(1, dtype=np.float32))
    y.backward(np.ones(1, dtype=np.float32))
    np.testing.assert_allclose(x.grad, [1.0])


def test_backward_on_non_scalar_needs_gradient():
    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar"):
        Square.apply(x).backward()


def test_default_dtype_is_float32_and_float64_is_kept():
    assert Tensor([1, 2, 3]).dtype == np.float32
    assert Tensor(np.zeros(2, dtype=np.float64)).dtype == np.float64


class ScaledByCached(Function):
    """y = c * x; backward returns the SAME cached array for every call (an array the engine
    must never write into, even when it sums several such gradients)."""
    cached = None

    @staticmethod
    def forward(ctx, x):
        return 3.0 * x, None

    @staticmethod
    def backward(ctx, g):
        return (ScaledByCached.cached,)


class Passthrough(Function):
    """y = x; backward returns the incoming gradient array itself (aliasing)."""
    @staticmethod
    def forward(ctx, x):
        return x.copy(), None

    @staticmethod
    def backward(ctx, g):
        return (g,)


@pytest.mark.parametrize("n_uses", [2, 3, 5])
def test_summed_gradients_never_write_into_returned_arrays(n_uses):
    # the engine sums several gradients for x in place only into a buffer it allocated itself
    ScaledByCached.cached = np.full((2, 3), 0.5, dtype=np.float32)
    x = Tensor(np.ones((2, 3), dtype=np.float32), requires_grad=True)
    h = Passthrough.apply(x)                 # h's gradient sum is passed on as x's gradient
    outs = [ScaledByCached.apply(h) for _ in range(n_uses)]
    total = outs[0]
    for o in outs[1:]:
        total = total + o
    user_grad = np.full((2, 3), 2.0, dtype=np.float32)
    total.backward(user_grad)
    np.testing.assert_array_equal(ScaledByCached.cached, np.full((2, 3), 0.5, dtype=np.float32))
    np.testing.assert_array_equal(user_grad, np.full((2, 3), 2.0, dtype=np.float32))
    np.testing.assert_allclose(x.grad, np.full((2, 3), 0.5 * n_uses, dtype=np.float32))
    # a second backward accumulates into x.grad; the first result must not have been aliased
    first = x.grad.copy()
    h2 = Passthrough.apply(x)
    (ScaledByCached.apply(h2) + ScaledByCached.apply(h2)).backward(user_grad)
    np.testing.assert_allclose(x.grad, first + 1.0)
    np.testing.assert_array_equal(ScaledByCached.cached, np.full((2, 3), 0.5, dtype=np.float32))


def test_summed_gradient_keeps_the_wider_dtype():
    # float32 + float64 gradient terms: the in-place path must not truncate a float64 sum
    x = Tensor(np.ones(3, dtype=np.float64), requires_grad=True)
    y = (x + x) + x
    y.backward(np.ones(3))
    np.testing.assert_array_equal(x.grad, np.full(3, 3.0))
    assert x.grad.dtype == np.float64
