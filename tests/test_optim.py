"""Optimizers, parameter groups, LR schedule, clipping and gradient accumulation.

Each update rule is checked on steps worked out by hand (the arithmetic is in the comments),
then against torch.optim over several steps when torch is installed.
"""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchgpt.autograd import Tensor
from scratchgpt.errors import CheckpointError, ConfigError
from scratchgpt.optim import SGD, Adam, AdamW, clip_grad_norm, decay_groups, lr_schedule


def param(values, dtype=np.float32):
    return Tensor(np.array(values, dtype=dtype), requires_grad=True)


def step_with(opt, p, grad):
    p.grad = np.array(grad, dtype=p.data.dtype)
    opt.step()
    return p.data.copy()


# ------------------------------------------------------------------------------------ SGD
def test_sgd_plain_step():
    p = param([1.0, -2.0])
    opt = SGD([p], lr=0.1)
    # p - lr * g = [1 - 0.1*0.5, -2 - 0.1*0.25]
    np.testing.assert_allclose(step_with(opt, p, [0.5, 0.25]), [0.95, -2.025], rtol=1e-7)


def test_sgd_momentum_and_weight_decay_two_steps():
    p = param([1.0])
    opt = SGD([p], lr=0.1, momentum=0.9, weight_decay=0.1)
    # step 1: g_t = 0.5 + 0.1*1.0 = 0.6; buf = 0.6; p = 1 - 0.06 = 0.94
    np.testing.assert_allclose(step_with(opt, p, [0.5]), [0.94], rtol=1e-6)
    # step 2: g_t = 0.5 + 0.1*0.94 = 0.594; buf = 0.9*0.6 + 0.594 = 1.134; p = 0.94 - 0.1134
    np.testing.assert_allclose(step_with(opt, p, [0.5]), [0.8266], rtol=1e-6)
    np.testing.assert_allclose(opt.state[id(p)]["momentum_buffer"], [1.134], rtol=1e-6)


def test_sgd_nesterov_two_steps():
    p = param([1.0])
    opt = SGD([p], lr=0.1, momentum=0.9, nesterov=True)
    # step 1: buf = 0.5; u = 0.5 + 0.9*0.5 = 0.95; p = 1 - 0.095
    np.testing.assert_allclose(step_with(opt, p, [0.5]), [0.905], rtol=1e-6)
    # step 2: buf = 0.45 + 0.5 = 0.95; u = 0.5 + 0.9*0.95 = 1.355; p = 0.905 - 0.1355
    np.testing.assert_allclose(step_with(opt, p, [0.5]), [0.7695], rtol=1e-6)


def test_sgd_dampening():
    p = param([1.0])
    opt = SGD([p], lr=0.1, momentum=0.9, dampening=0.5)
    # step 1: buf = g = 0.5 (no dampening on the first step); p = 0.95
    np.testing.assert_allclose(step_with(opt, p, [0.5]), [0.95], rtol=1e-6)
    # step 2: buf = 0.9*0.5 + 0.5*0.5 = 0.7; p = 0.95 - 0.07
    np.testing.assert_allclose(step_with(opt, p, [0.5]), [0.88], rtol=1e-6)


def test_sgd_does_not_modify_grad():
    p = param([1.0, 2.0])
    opt = SGD([p], lr=0.1, momentum=0.9, weight_decay=0.5)
    p.grad = np.array([0.5, 0.5], dtype=np.float32)
    opt.step()
    np.testing.assert_array_equal(p.grad, [0.5, 0.5])


# ----------------------------------------------------------------------------------- Adam
# lr = 0.1, betas = (0.9, 0.999), eps = 1e-8; two coordinates, gradients g1 then g2.
#   coordinate 0: p = 1,  g1 = 0.5,  g2 = -0.25
#   coordinate 1: p = -2, g1 = -1.0, g2 = 0.5
# Adam step 1 (coord 0): m = 0.1*0.5 = 0.05, v = 0.001*0.25 = 2.5e-4,
#   m_hat = 0.05/0.1 = 0.5, v_hat = 2.5e-4/0.001 = 0.25, p = 1 - 0.1*0.5/(0.5 + 1e-8) = 0.900000002
# Adam step 2 (coord 0): m = 0.9*0.05 - 0.1*0.25 = 0.02, v = 0.999*2.5e-4 + 0.001*0.0625 = 3.1225e-4,
#   m_hat = 0.02/0.19 = 0.105263158, v_hat = 3.1225e-4/0.001999 = 0.156203102,
#   p = 0.900000002 - 0.1*0.105263158/0.395225380 = 0.873366299
# Coordinate 1 is coordinate 0 times -2 in g: the step is the same size, opposite sign.
G1 = [0.5, -1.0]
G2 = [-0.25, 0.5]


def test_adam_two_steps():
    p = param([1.0, -2.0])
    opt = Adam([p], lr=0.1)
    np.testing.assert_allclose(step_with(opt, p, G1), [0.900000002, -1.900000001], rtol=1e-6)
    st_ = opt.state[id(p)]
    np.testing.assert_allclose(st_["exp_avg"], [0.05, -0.1], rtol=1e-6)
    np.testing.assert_allclose(st_["exp_avg_sq"], [2.5e-4, 1e-3], rtol=1e-6)
    np.testing.assert_allclose(step_with(opt, p, G2), [0.873366299, -1.873366297], rtol=1e-6)
    np.testing.assert_allclose(st_["exp_avg"], [0.02, -0.04], rtol=1e-5)
    np.testing.assert_allclose(st_["exp_avg_sq"], [3.1225e-4, 1.249e-3], rtol=1e-5)
    assert st_["step"] == 2


def test_adam_l2_weight_decay_goes_through_the_moments():
    p = param([1.0, -2.0])
    opt = Adam([p], lr=0.1, weight_decay=0.1)
    # step 1: g = 0.5 + 0.1*1 = 0.6 -> m_hat = 0.6, v_hat = 0.36: still a unit step, p = 0.9
    np.testing.assert_allclose(step_with(opt, p, G1), [0.9, -1.9], rtol=1e-6)
    np.testing.assert_allclose(opt.state[id(p)]["exp_avg"], [0.06, -0.12], rtol=1e-6)
    # step 2 (coord 0): g = -0.25 + 0.09 = -0.16; m = 0.054 - 0.016 = 0.038;
    #   v = 0.999*3.6e-4 + 0.001*0.0256 = 3.8524e-4; m_hat = 0.2, v_hat = 0.192716358;
    #   p = 0.9 - 0.1*0.2/0.438994713 = 0.854441367
    np.testing.assert_allclose(step_with(opt, p, G2), [0.854441367, -1.853747265], rtol=1e-6)


def test_adamw_decoupled_weight_decay():
    p = param([1.0, -2.0])
    opt = AdamW([p], lr=0.1, weight_decay=0.1)
    # step 1: p = 1 - 0.1*0.1*1 - 0.1*1 = 0.89 ; p1 = -2 + 0.02 + 0.1 = -1.88
    np.testing.assert_allclose(step_with(opt, p, G1), [0.890000002, -1.880000001], rtol=1e-6)
    # moments do not see the decay: same as plain Adam
    np.testing.assert_allclose(opt.state[id(p)]["exp_avg"], [0.05, -0.1], rtol=1e-6)
    # step 2: p = 0.89 - 0.1*0.1*0.89 - 0.1*0.266337 = 0.854466299
    np.testing.assert_allclose(step_with(opt, p, G2), [0.854466299, -1.834566297], rtol=1e-6)


def test_adamw_float64_params():
    p32, p64 = param([1.0, -2.0]), param([1.0, -2.0], dtype=np.float64)
    o32, o64 = AdamW([p32], lr=0.1, weight_decay=0.1), AdamW([p64], lr=0.1, weight_decay=0.1)
    for g in (G1, G2):
        step_with(o32, p32, g)
        step_with(o64, p64, g)
    assert p64.data.dtype == np.float64
    np.testing.assert_allclose(p64.data, [0.8544662986878463, -1.8345662973609032], rtol=1e-12)
    np.testing.assert_allclose(p32.data, p64.data, rtol=1e-6)


def test_adam_skips_params_without_grad():
    a, b = param([1.0]), param([2.0])
    opt = AdamW([a, b], lr=0.1)
    a.grad = np.array([1.0], dtype=np.float32)
    opt.step()
    assert b.data[0] == 2.0 and id(b) not in opt.state
    assert opt.state[id(a)]["step"] == 1


def test_zero_grad_clears():
    a = param([1.0])
    opt = SGD([a], lr=0.1)
    a.grad = np.ones(1, dtype=np.float32)
    opt.zero_grad()
    assert a.grad is None


# ---------------------------------------------------------------------- param groups
class _Named:
    """Stands in for a model: named_parameters() in GPT-2 naming."""

    def __init__(self, rng):
        def p(*shape):
            return Tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True)
        self.wte = p(10, 4)
        self.params = [
            ("transformer.wte.weight", self.wte),
            ("transformer.wpe.weight", p(8, 4)),
            ("transformer.h.0.ln_1.weight", p(4)),
            ("transformer.h.0.ln_1.bias", p(4)),
            ("transformer.h.0.attn.c_attn.weight", p(4, 12)),
            ("transformer.h.0.attn.c_attn.bias", p(12)),
            ("transformer.h.0.mlp.c_fc.weight", p(4, 16)),
            ("lm_head.weight", self.wte),  # tied: same Parameter, listed once
            ("encoder.tok_embedding.weight", p(10, 4)),
        ]

    def named_parameters(self):
        return list(self.params)


def test_decay_groups_split(rng):
    model = _Named(rng)
    decay, keep = decay_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and keep["weight_decay"] == 0.0
    assert decay["names"] == ["transformer.h.0.attn.c_attn.weight", "transformer.h.0.mlp.c_fc.weight"]
    assert keep["names"] == ["transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.ln_1.weight",
                             "transformer.h.0.ln_1.bias", "transformer.h.0.attn.c_attn.bias",
                             "encoder.tok_embedding.weight"]
    # also accepts the (name, param) pairs directly
    assert decay_groups(model.named_parameters(), 0.1)[0]["names"] == decay["names"]


def test_decay_groups_drive_adamw(rng):
    model = _Named(rng)
    groups = decay_groups(model, 0.5)
    opt = AdamW(groups, lr=0.1)
    before = {n: p.data.copy() for n, p in model.params}
    for _, p in model.params:
        p.grad = np.zeros_like(p.data)  # zero gradient: only the decay can move a weight
    opt.step()
    for name, p in model.params:
        if name in groups[0]["names"]:
            np.testing.assert_allclose(p.data, before[name] * (1 - 0.1 * 0.5), rtol=1e-6)
        else:
            np.testing.assert_array_equal(p.data, before[name])


def test_group_hyperparameters_override_defaults():
    a, b = param([1.0]), param([1.0])
    opt = SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    a.grad = np.ones(1, np.float32)
    b.grad = np.ones(1, np.float32)
    opt.step()
    np.testing.assert_allclose([a.data[0], b.data[0]], [0.9, 0.5], rtol=1e-6)


@pytest.mark.parametrize("bad, match", [
    (lambda p: SGD([p], lr=-1.0), "lr"),
    (lambda p: SGD([p, p]), "twice"),
    (lambda p: SGD([]), "empty"),
    (lambda p: AdamW([p], betas=(0.9, 1.0)), "betas"),
    (lambda p: AdamW([{"params": [p], "momentum": 0.9}]), "unknown key"),
    (lambda p: SGD([p], nesterov=True), "nesterov"),
    (lambda p: SGD([Tensor(np.ones(2))]), "does not require grad"),
    (lambda p: decay_groups([("w", p)], -0.1), "weight_decay"),
])
def test_bad_config_raises(bad, match):
    with pytest.raises(ConfigError, match=match):
        bad(param([1.0]))


# -------------------------------------------------------------------------- schedule
def test_lr_schedule_key_points():
    kw = dict(max_lr=1.0, warmup_steps=10, total_steps=110, min_lr=0.1)
    assert lr_schedule(0, **kw) == pytest.approx(0.1)        # (0+1)/10
    assert lr_schedule(4, **kw) == pytest.approx(0.5)        # (4+1)/10
    assert lr_schedule(9, **kw) == pytest.approx(1.0)        # warmup ends at max_lr
    assert lr_schedule(10, **kw) == pytest.approx(1.0)       # cosine starts at max_lr
    assert lr_schedule(60, **kw) == pytest.approx(0.55)      # half way: 0.1 + 0.9 * 0.5
    assert lr_schedule(35, **kw) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_schedule(110, **kw) == pytest.approx(0.1)      # end
    assert lr_schedule(10_000, **kw) == 0.1                   # past the end: stays at min_lr
    assert lr_schedule(0, 3e-4, 0, 100) == pytest.approx(3e-4)  # no warmup
    assert lr_schedule(5, 1.0, 5, 5, 0.2) == 0.2              # total == warmup


@given(warmup=st.integers(0, 50), extra=st.integers(0, 200), max_lr=st.floats(1e-5, 1.0),
       frac=st.floats(0.0, 1.0))
def test_lr_schedule_shape(warmup, extra, max_lr, frac):
    total, min_lr = warmup + extra, max_lr * frac
    lrs = [lr_schedule(s, max_lr, warmup, total, min_lr) for s in range(total + 20)]
    tol = 1e-12 * max_lr
    assert all(min_lr - tol <= lr <= max_lr + tol for lr in lrs[warmup:])
    assert all(0.0 < lr <= max_lr + tol for lr in lrs[:warmup])
    assert all(b >= a - tol for a, b in zip(lrs[:warmup], lrs[1:warmup]))      # warmup rises
    assert all(b <= a + tol for a, b in zip(lrs[warmup:], lrs[warmup + 1:]))   # then never rises
    assert lrs[-1] == pytest.approx(min_lr)


def test_lr_schedule_bad_input():
    with pytest.raises(ConfigError, match="step"):
        lr_schedule(-1, 1.0, 10, 100)
    with pytest.raises(ConfigError, match="total_steps"):
        lr_schedule(0, 1.0, 10, 5)
    with pytest.raises(ConfigError, match="min_lr"):
        lr_schedule(0, 1.0, 10, 100, min_lr=2.0)


# -------------------------------------------------------------------------- clipping
def test_clip_grad_norm_scales_to_max_norm():
    a, b = param([0.0, 0.0]), param([0.0])
    a.grad = np.array([3.0, 0.0], np.float32)
    b.grad = np.array([4.0], np.float32)      # global norm sqrt(9 + 16) = 5
    total = clip_grad_norm([a, b], max_norm=1.0)
    assert total == pytest.approx(5.0)
    np.testing.assert_allclose(a.grad, [0.6, 0.0], rtol=1e-5)   # 3 * 1/5
    np.testing.assert_allclose(b.grad, [0.8], rtol=1e-5)
    assert math.sqrt(float((a.grad ** 2).sum() + (b.grad ** 2).sum())) == pytest.approx(1.0, rel=1e-5)


def test_clip_grad_norm_leaves_small_gradients():
    a, b = param([0.0]), param([0.0])
    a.grad = np.array([0.3], np.float32)
    total = clip_grad_norm([a, b], max_norm=1.0)  # b has no grad: skipped
    assert total == pytest.approx(0.3)
    assert a.grad[0] == np.float32(0.3)


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_clip_grad_norm_non_finite_is_reported_not_applied(bad):
    a, b = param([0.0, 0.0]), param([0.0])
    a.grad = np.array([1.0, bad], np.float32)
    b.grad = np.array([2.0], np.float32)
    total = clip_grad_norm([a, b], max_norm=1.0)
    assert not math.isfinite(total)
    assert (math.isnan(total) if np.isnan(bad) else total == math.inf)
    assert b.grad[0] == 2.0


def test_clip_grad_norm_float32_overflow_is_not_inf():
    a = param([0.0, 0.0])
    a.grad = np.array([3e19, 4e19], np.float32)  # squares overflow float32, the norm does not
    total = clip_grad_norm([a], max_norm=1.0)
    assert total == pytest.approx(5e19, rel=1e-6)
    np.testing.assert_allclose(a.grad, [0.6, 0.8], rtol=1e-5)


def test_clip_grad_norm_accepts_param_groups(rng):
    groups = decay_groups(_Named(rng), 0.1)
    grads = []
    for g in groups:
        for p in g["params"]:
            p.grad = rng.standard_normal(p.shape).astype(np.float32)
            grads.append(p.grad.astype(np.float64))
    expect = math.sqrt(sum(float((g ** 2).sum()) for g in grads))
    assert clip_grad_norm(groups, max_norm=1e9) == pytest.approx(expect, rel=1e-5)


# ------------------------------------------------------------------- state save/load
def _train(opt, params, grads):
    for g_step in grads:
        for p, g in zip(params, g_step):
            p.grad = g.copy()
        opt.step()


@pytest.mark.parametrize("make", [
    lambda ps: AdamW(ps, lr=0.01, weight_decay=0.1),
    lambda ps: Adam(ps, lr=0.01, weight_decay=0.1),
    lambda ps: SGD(ps, lr=0.01, momentum=0.9, nesterov=True),
])
@pytest.mark.parametrize("via_file", [False, True])
def test_state_dict_roundtrip_continues_identically(make, via_file, rng, tmp_path):
    shapes = [(3, 4), (4,), (2, 2, 2)]
    params = [Tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(6)]
    opt = make(params)
    _train(opt, params, grads[:3])

    clones = [Tensor(p.data.copy(), requires_grad=True) for p in params]
    opt2 = make(clones)
    if via_file:
        opt.save(tmp_path / "optimizer.safetensors")
        opt2.load(tmp_path / "optimizer.safetensors")
    else:
        sd = opt.state_dict()
        assert all(isinstance(a, np.ndarray) for a in sd["arrays"].values())
        import json
        json.dumps(sd["meta"])  # JSON-able, no pickle needed
        opt2.load_state_dict(sd)

    _train(opt, params, grads[3:])
    _train(opt2, clones, grads[3:])
    for p, c in zip(params, clones):
        np.testing.assert_array_equal(p.data, c.data)


def test_state_dict_restores_hyperparameters(rng):
    a = param([1.0, 2.0])
    opt = AdamW([a], lr=0.5, betas=(0.8, 0.9))
    a.grad = np.ones(2, np.float32)
    opt.step()
    b = param([1.0, 2.0])
    opt2 = AdamW([b], lr=1e-3)
    opt2.load_state_dict(opt.state_dict())
    assert opt2.param_groups[0]["lr"] == 0.5 and opt2.param_groups[0]["betas"] == (0.8, 0.9)


def test_load_state_dict_mismatch_is_clear(rng):
    a = param(np.ones((3, 4)))
    opt = AdamW([a], lr=0.1)
    a.grad = np.ones((3, 4), np.float32)
    opt.step()
    sd = opt.state_dict()
    with pytest.raises(CheckpointError, match="shape"):
        AdamW([param(np.ones((4, 3)))]).load_state_dict(sd)
    with pytest.raises(CheckpointError, match="SGD"):
        AdamW([param(np.ones((3, 4)))]).load_state_dict(SGD([param(np.ones((3, 4)))]).state_dict())
    with pytest.raises(CheckpointError, match="state has 1 params, optimizer has 2"):
        AdamW([param(np.ones((3, 4))), param([1.0])]).load_state_dict(sd)
    del sd["arrays"]["0.0.exp_avg_sq"]
    fresh = param(np.ones((3, 4)))
    opt3 = AdamW([fresh])
    with pytest.raises(CheckpointError, match="exp_avg_sq"):
        opt3.load_state_dict(sd)
    assert opt3.state == {}  # nothing half-loaded


# ---------------------------------------------------------------- against torch.optim
def _torch_compare(make_ours, make_torch, steps=5, seed=0):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    shapes = [(5, 7), (7,), (3, 4, 2)]
    init = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(steps)]
    ours = [Tensor(x.copy(), requires_grad=True) for x in init]
    theirs = [torch.nn.Parameter(torch.from_numpy(x.copy())) for x in init]
    opt, topt = make_ours(ours), make_torch(torch, theirs)
    for g_step in grads:
        for p, t, g in zip(ours, theirs, g_step):
            p.grad = g.copy()
            t.grad = torch.from_numpy(g.copy())
        opt.step()
        topt.step()
        for p, t in zip(ours, theirs):
            np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=2e-5, atol=2e-6)


def test_sgd_momentum_matches_torch():
    _torch_compare(lambda ps: SGD([{"params": ps[:2], "weight_decay": 0.01}, {"params": ps[2:]}],
                                  lr=0.05, momentum=0.9),
                   lambda torch, ps: torch.optim.SGD([{"params": ps[:2], "weight_decay": 0.01}, {"params": ps[2:]}],
                                                     lr=0.05, momentum=0.9))


def test_sgd_nesterov_matches_torch():
    _torch_compare(lambda ps: SGD(ps, lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1),
                   lambda torch, ps: torch.optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1))


def test_adam_matches_torch():
    _torch_compare(lambda ps: Adam(ps, lr=0.01, betas=(0.8, 0.95), weight_decay=0.05),
                   lambda torch, ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.95), weight_decay=0.05))


def test_adamw_matches_torch():
    _torch_compare(lambda ps: AdamW([{"params": ps[:1], "weight_decay": 0.1},
                                     {"params": ps[1:], "weight_decay": 0.0}], lr=0.01),
                   lambda torch, ps: torch.optim.AdamW([{"params": ps[:1], "weight_decay": 0.1},
                                                        {"params": ps[1:], "weight_decay": 0.0}], lr=0.01))


# --------------------------------------------------------------- gradient accumulation
def _mlp_loss(params, x, y):
    from scratchgpt.ops import linear, mean, mul, sub, tanh
    w1, b1, w2, b2 = params
    h = tanh(linear(Tensor(x), w1, b1))        # (N, H)
    err = sub(linear(h, w2, b2), Tensor(y))    # (N, O)
    return mean(mul(err, err))                 # mean over every sample and output


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_gradient_accumulation_equals_big_batch(dtype, rtol, rng):
    from scratchgpt.ops import scale
    N, K, D, H, O = 12, 3, 5, 6, 2
    x = rng.standard_normal((N, D)).astype(dtype)
    y = rng.standard_normal((N, O)).astype(dtype)
    init = [rng.standard_normal(s).astype(dtype) for s in [(D, H), (H,), (H, O), (O,)]]

    big = [Tensor(a.copy(), requires_grad=True) for a in init]
    _mlp_loss(big, x, y).backward()

    acc = [Tensor(a.copy(), requires_grad=True) for a in init]
    opt = AdamW(acc, lr=0.01)
    for k in range(K):                          # K equal micro-batches, each loss / K
        sl = slice(k * N // K, (k + 1) * N // K)
        scale(_mlp_loss(acc, x[sl], y[sl]), 1.0 / K).backward()
    for b, a in zip(big, acc):
        np.testing.assert_allclose(a.grad, b.grad, rtol=rtol, atol=rtol * 1e-2)

    # and the step taken from the accumulated gradient is the big-batch step
    opt_big = AdamW(big, lr=0.01)
    opt.step()
    opt_big.step()
    for b, a in zip(big, acc):
        np.testing.assert_allclose(a.data, b.data, rtol=rtol, atol=rtol * 1e-2)
