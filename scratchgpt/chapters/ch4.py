"""Chapter 4 — every formula of the tutorial's §4.2, computed and checked live.

    python -m scratchgpt.chapters.ch4            # ~1 minute on 2 CPU cores
    python -m scratchgpt.chapters.ch4 --quick    # what the tests run
    python -m scratchgpt.chapters.ch4 --device cuda [--sim]   # the §4.2 checks on the GPU too

For each formula the chapter runs the library's fast path (Numba / BLAS, float32) and the
float64 reference (``*_ref``) of the same op on the same random inputs, prints the largest
difference of the outputs and of the gradients, and runs a float64 central-difference gradient
check of the autograd Function. Then §4.3's case study in miniature: an encoder-decoder learns
to reverse digit strings. Guide: chapters/ch4.md
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .. import ops
from ..autograd import gradcheck
# the op *modules* (their _ref twins and raw forward/backward pairs); ops.gelu etc. are the functions
from ..ops import attention, cross_attention_op, cross_entropy_op, embedding_op, gelu_op, layernorm_op, matmul_op
from ..commands._flags import add_device, apply_device, chapter_args, chapter_parser, run_chapter


@dataclass
class Check:
    section: str        # tutorial section
    formula: str        # what is computed
    op: str             # library function
    fast: Callable      # fast forward: *arrays -> (out, cache)
    fast_bwd: Callable  # (dout, cache) -> grads
    ref: Callable       # float64 forward
    ref_bwd: Callable
    inputs: Callable    # rng -> list of arrays (float32 or int)
    tensor_fn: Callable  # *Tensors -> Tensor, for gradcheck


def _max_err(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)))) if np.size(a) else 0.0


def _grads(g):
    g = g if isinstance(g, tuple) else (g,)
    return [x for x in g if x is not None]


def _beside(mask, t):
    """The mask on the device of tensor ``t`` (a GPU kernel takes device arrays only)."""
    from ..backend import to_device
    return mask if t.device == "cpu" else to_device(mask, t.device)


def checks(B=2, T=5, C=8, NH=2, V=11, Tk=4) -> list[Check]:
    f32 = np.float32

    def rnd(rng, *shape):
        return rng.standard_normal(shape).astype(f32)

    pad = np.ones((B, Tk), dtype=bool)
    pad[0, -1] = False  # one padded source position: the mask must remove it
    return [
        Check("4.2.1 输入层", "x_t = wte[w_t] + wpe[t]", "token_position_embedding",
              embedding_op.token_position_embedding_forward, embedding_op.token_position_embedding_backward,
              embedding_op.token_position_embedding_forward_ref, embedding_op.token_position_embedding_backward_ref,
              lambda r: [r.integers(0, V, (B, T)), rnd(r, V, C), rnd(r, T + 2, C)],
              lambda idx, wte, wpe: ops.token_position_embedding(idx, wte, wpe)),
        Check("4.2.2 编码器", "LN(x) = (x - mean) / std * w + b", "layernorm",
              layernorm_op.layernorm_forward, layernorm_op.layernorm_backward,
              layernorm_op.layernorm_forward_ref, layernorm_op.layernorm_backward_ref,
              lambda r: [rnd(r, B, T, C), rnd(r, C), rnd(r, C)],
              lambda x, w, b: ops.layernorm(x, w, b)),
        Check("4.2.2 编码器", "MHA(x, x) with padding mask (bidirectional)", "cross_attention",
              lambda q, kv: cross_attention_op.cross_attention_forward(q, kv, NH, kv_mask=pad),
              cross_attention_op.cross_attention_backward,
              lambda q, kv: cross_attention_op.cross_attention_forward_ref(q, kv, NH, kv_mask=pad),
              cross_attention_op.cross_attention_backward_ref,
              lambda r: [rnd(r, B, Tk, C), rnd(r, B, Tk, 2 * C)],
              lambda q, kv: ops.cross_attention(q, kv, NH, kv_mask=_beside(pad, q))),
        Check("4.2.2 编码器", "MLP: GELU(x W1 + b1) (tanh GELU)", "gelu",
              gelu_op.gelu_forward, gelu_op.gelu_backward, gelu_op.gelu_forward_ref, gelu_op.gelu_backward_ref,
              lambda r: [rnd(r, B, T, 4 * C)], lambda x: ops.gelu(x)),
        Check("4.2.3 解码器", "CausalMHA: softmax(q kᵀ/√HS + mask) v", "causal_self_attention",
              lambda qkv: attention.causal_self_attention_forward(qkv, NH),
              attention.causal_self_attention_backward,
              lambda qkv: attention.causal_self_attention_forward_ref(qkv, NH),
              attention.causal_self_attention_backward_ref,
              lambda r: [rnd(r, B, T, 3 * C)], lambda qkv: ops.causal_self_attention(qkv, NH)),
        Check("4.2.3 解码器", "Cross-Attention(h_i, h_j, h_j)", "cross_attention",
              lambda q, kv: cross_attention_op.cross_attention_forward(q, kv, NH, kv_mask=pad),
              cross_attention_op.cross_attention_backward,
              lambda q, kv: cross_attention_op.cross_attention_forward_ref(q, kv, NH, kv_mask=pad),
              cross_attention_op.cross_attention_backward_ref,
              lambda r: [rnd(r, B, T, C), rnd(r, B, Tk, 2 * C)],
              lambda q, kv: ops.cross_attention(q, kv, NH, kv_mask=_beside(pad, q))),
        Check("4.2.4 输出层", "Dense(h) = h W + b", "linear",
              matmul_op.linear_forward, matmul_op.linear_backward, matmul_op.linear_forward_ref, matmul_op.linear_backward_ref,
              lambda r: [rnd(r, B, T, C), rnd(r, C, V), rnd(r, V)], lambda x, w, b: ops.linear(x, w, b)),
        Check("4.2.4 输出层", "loss = -log Softmax(z)[y] (mean)", "cross_entropy",
              cross_entropy_op.cross_entropy_forward, cross_entropy_op.cross_entropy_backward,
              cross_entropy_op.cross_entropy_forward_ref, cross_entropy_op.cross_entropy_backward_ref,
              lambda r: [rnd(r, B, T, V), r.integers(0, V, (B, T))],
              lambda z, y: ops.cross_entropy(z, y)),
    ]


def run_checks(seed: int = 0) -> list[dict]:
    rows = []
    for i, chk in enumerate(checks()):
        rng = np.random.default_rng(seed + i)
        inputs = chk.inputs(rng)
        out, cache = chk.fast(*inputs)
        out_ref, cache_ref = chk.ref(*inputs)
        dout = np.random.default_rng(100 + i).standard_normal(np.shape(out)).astype(np.float32)
        if np.ndim(out) == 0:
            dout = np.float32(1.0)
        g = _grads(chk.fast_bwd(dout, cache))
        g_ref = _grads(chk.ref_bwd(np.float64(dout) if np.ndim(dout) == 0 else dout.astype(np.float64), cache_ref))
        fwd_err = _max_err(out, out_ref)
        bwd_err = max((_max_err(a, b) for a, b in zip(g, g_ref)), default=0.0)
        # gradcheck in float64, on small-magnitude inputs so every function is smooth at h=1e-6
        gc_inputs = [x.astype(np.float64) * 0.5 if np.issubdtype(x.dtype, np.floating) else x for x in inputs]
        rep = gradcheck(chk.tensor_fn, gc_inputs, atol=1e-6, rtol=1e-5, raise_on_fail=False)
        rows.append({"section": chk.section, "formula": chk.formula, "op": chk.op,
                     "forward_err_f32": fwd_err, "backward_err_f32": bwd_err,
                     "gradcheck_abs_err_f64": rep["max_abs_err"], "gradcheck_ok": rep["ok"]})
    return rows


def run_cuda_checks(seed: int = 0) -> list[dict]:
    """The same formulas through the CUDA kernels (ops/*_cuda.py): Tensors on the GPU, forward and
    backward through autograd, compared with the float64 reference on the same inputs."""
    from ..autograd import Tensor
    from ..backend import to_device, to_host
    from ..errors import DeviceError
    rows = []
    for i, chk in enumerate(checks()):
        rng = np.random.default_rng(seed + i)
        inputs = chk.inputs(rng)
        row = {"section": chk.section, "op": chk.op, "formula": chk.formula}
        dev = [Tensor(to_device(x, "cuda"), requires_grad=True) if np.issubdtype(x.dtype, np.floating)
               else to_device(x, "cuda") for x in inputs]
        try:
            out = chk.tensor_fn(*dev)
        except DeviceError as e:
            rows.append({**row, "cuda": f"no CUDA kernel yet ({str(e).split(' has ')[0]})"})
            continue
        out_ref, cache_ref = chk.ref(*inputs)
        dout = np.random.default_rng(100 + i).standard_normal(np.shape(out_ref)).astype(np.float32)
        out.backward(to_device(dout, "cuda"))
        g = [to_host(t.grad) for t in dev if isinstance(t, Tensor)]
        g_ref = _grads(chk.ref_bwd(dout.astype(np.float64), cache_ref))
        rows.append({**row, "cuda": "ok", "forward_err_f32": _max_err(to_host(out.data), out_ref),
                     "backward_err_f32": max((_max_err(a, b) for a, b in zip(g, g_ref)), default=0.0)})
    return rows


def print_cuda_table(rows: list[dict], kind: str) -> None:
    print(f"== §4.2 on the GPU ({kind}): CUDA kernels (float32) vs the float64 reference ==")
    for r in rows:
        if r["cuda"] != "ok":
            print(f"  {r['section'].split()[0]:<10} {r['op']:<26} {r['cuda']}")
            continue
        print(f"  {r['section'].split()[0]:<10} {r['op']:<26} {r['forward_err_f32']:10.2e} "
              f"{r['backward_err_f32']:10.2e}  {r['formula']}")


def print_table(rows: list[dict]) -> None:
    print("== §4.2: each formula, fast path (float32) vs float64 reference, and a float64 gradient check ==")
    print(f"  {'section':<10} {'op':<26} {'fwd |err|':>10} {'bwd |err|':>10} {'gradcheck':>11}  formula")
    for r in rows:
        ok = "ok" if r["gradcheck_ok"] else "FAIL"
        print(f"  {r['section'].split()[0]:<10} {r['op']:<26} {r['forward_err_f32']:10.2e} "
              f"{r['backward_err_f32']:10.2e} {r['gradcheck_abs_err_f64']:8.1e} {ok:<3} {r['formula']}")
    print("  (fwd/bwd |err|: largest absolute difference of the float32 fast path from the float64 reference;\n"
          "   gradcheck: largest |analytic - central difference| of the autograd Function in float64)")


def fused_vs_composition(seed: int = 0) -> dict:
    """The fused causal attention equals matmul -> mask -> softmax -> matmul done with separate ops."""
    rng = np.random.default_rng(seed)
    B, T, C, NH = 2, 6, 8, 2
    HS = C // NH
    qkv = rng.standard_normal((B, T, 3 * C)).astype(np.float32)
    fused = ops.causal_self_attention(qkv, NH).data
    q, k, v = (qkv[..., i * C:(i + 1) * C].reshape(B, T, NH, HS).transpose(0, 2, 1, 3) for i in range(3))
    scores = ops.matmul(q, k.transpose(0, 1, 3, 2)).data / np.sqrt(HS)            # (B, NH, T, T)
    scores = np.where(np.tril(np.ones((T, T), dtype=bool)), scores, -np.inf).astype(np.float32)
    p = ops.softmax(scores, axis=-1)
    y = ops.matmul(p, v).data.transpose(0, 2, 1, 3).reshape(B, T, C)
    err = _max_err(fused, y)
    print(f"\n  fused causal_self_attention vs matmul+mask+softmax+matmul: max |diff| = {err:.2e}")
    return {"fused_vs_composition_err": err}


def reverse_digits_case_study(steps: int, seed: int = 0) -> dict:
    """§4.3 done correctly: an encoder-decoder, teacher forcing, greedy autoregressive decoding."""
    from ..models import Seq2SeqConfig, Seq2SeqTransformer
    from ..optim import AdamW, lr_schedule

    print("\n== §4.3 in miniature: an encoder-decoder learns to reverse digit strings ==")
    from ..data.toy import BOS, DIGITS_VOCAB, EOS, reverse_digits_batch

    L = 6

    def batch(rng, n):
        return reverse_digits_batch(rng, n, 3, L)

    cfg = Seq2SeqConfig(vocab_size=DIGITS_VOCAB, block_size=L + 1, n_encoder_layer=1, n_decoder_layer=1, n_head=2, n_embd=32)
    model = Seq2SeqTransformer(cfg, seed=seed)
    opt = AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_schedule(step, 3e-3, steps // 10, steps, 3e-4)
        src, mask, tin, tout = batch(rng, 32)
        opt.zero_grad()
        _, loss = model(src, tin, tout, src_mask=mask)
        loss.backward()
        opt.step()
        if step % max(1, steps // 5) == 0 or step == steps - 1:
            print(f"  step {step:4d}  loss {loss.item():.4f}")
    secs = time.perf_counter() - t0
    src, mask, tin, tout = batch(np.random.default_rng(seed + 99), 200)
    gen = model.generate(src, L + 1, bos_id=BOS, eos_id=EOS, src_mask=mask)
    correct = total = exact = 0
    for i in range(len(src)):
        want = list(tout[i][tout[i] >= 0])           # reversed digits + EOS
        got = list(gen[i][:len(want)]) + [-1] * max(0, len(want) - gen.shape[1])
        correct += sum(int(a == b) for a, b in zip(got, want))
        total += len(want)
        exact += int(got == want)
    acc = correct / total
    ex = 100 * exact / len(src)
    print(f"  trained {steps} steps in {secs:.1f} s; held-out token accuracy {acc:.1%}, "
          f"exact strings {exact}/{len(src)} ({percent(exact, len(src))})")
    s = [int(t) for t in src[0][mask[0]]]
    print(f"  example: {s} -> {[int(t) for t in gen[0] if t < 10]}")
    return {"token_accuracy": acc, "exact": exact / len(src), "seconds": secs}


def text_to_ids(quick: bool) -> dict:
    """§4.2.1 starts before Embed: w_i are token ids. Show a merge being learned, then real text."""
    from ..tokenizer import BPETokenizer
    from .ch2 import corpus_lines
    from .tokenization_walkthrough import show_merges_step_by_step

    print("== §4.2.1 输入层, step 0: text -> ids (byte-level BPE) ==")
    show_merges_step_by_step(["low lower lowest", "low low newer newest"], 3, max_words=4,
                             print_fn=lambda line: print("  " + line))
    lines = corpus_lines(600 if quick else 3000)
    tok = BPETokenizer.train(lines, vocab_size=512 if quick else 2048)
    shown = {}
    for text in ("Where is my order A12345?", "我的订单A12345到哪了？"):
        ids = tok.encode(text)
        pieces = [tok.id_to_token_bytes(i).decode("utf-8", errors="backslashreplace") for i in ids]
        print(f"  {text!r}: {len(text)} chars -> {len(ids)} ids {ids}")
        print(f"    pieces: {' | '.join(pieces)}")
        shown[text] = ids
    print()
    return shown


def percent(k: int, n: int) -> str:
    """k/n as a percentage that never rounds a failure up to 100 % or a success down to 0 %
    (199/200 is "99.5 %", not "100 %")."""
    digits = 0
    while digits < 3:
        text = f"{100 * k / n:.{digits}f}"
        if (k == n) == (float(text) == 100) and (k == 0) == (float(text) == 0):
            break
        digits += 1
    return f"{100 * k / n:.{digits}f} %"


def main(argv=None) -> dict:
    ap = chapter_parser("ch4", __doc__.splitlines()[0], quick_help="fewer training steps for the case study",
                        writes_files=False)
    add_device(ap)
    args = chapter_args(ap, argv)
    device = apply_device(args)
    ids = text_to_ids(args.quick)
    rows = run_checks()
    print_table(rows)
    if device == "cuda":
        from ..backend import cuda_kind
        cuda_rows = run_cuda_checks()
        print_cuda_table(cuda_rows, cuda_kind())
        if args.quick:            # the GPU checks are what --device cuda asked for; keep the rest short
            return {"text_to_ids": ids, "checks": rows, "cuda_checks": cuda_rows}
    comp = fused_vs_composition()
    case = reverse_digits_case_study(steps=300 if args.quick else 800)
    return {"text_to_ids": ids, "checks": rows, **comp, "case_study": case}


if __name__ == "__main__":
    raise SystemExit(run_chapter(main, "ch4"))
