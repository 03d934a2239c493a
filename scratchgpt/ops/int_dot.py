"""Integer dot products of int8 activations with int8 / int4 weight rows, written as LLVM IR.

Math (one call, 4 weight rows r = 0..3, ``nb`` blocks of 32 values):
    acc_r = Σ_b  float(Σ_{i<32} xq[32b + i] · q_r[32b + i]) · (dx[b] · dw_r[b])
xq: the activation row quantized to int8 (ops/quantized_matmul.py's ``quantize_rows``), dx its
per-block scales; q_r: an int8 weight row (or an int4 row, unpacked here), dw_r its per-block
scales (G = 32: one scale per block). The integer block sums are exact (|Σ| <= 32·127·127 < 2^31).

Why LLVM IR instead of a Numba loop. The product of a block is llama.cpp's Q8_0 x Q8_0: widen
the 32 int8 values to int16 and multiply-add adjacent pairs into 16 int32 lanes (x86 PMADDWD:
one instruction for 32 products), convert the 16 lanes to float and FMA them with the block's
scale into 16 float accumulators that live in registers for the whole row. Written as Numba
loops (tried: 7 variants, benchmarks/generate.py --qkernels for the numbers), LLVM never got
there: Numba types ``int32 * int32`` as int64, the narrowed loops used VPMULLD (a slow 32-bit
multiply) or stayed scalar because the float accumulator array may alias the int8 loads
(char-typed loads alias anything), and the 32-wide block kept it from the loop vectoriser.
Here the vector types are explicit, so the machine code is the one intended (checked in
tests/test_ops_int_dot.py: PMADDWD in the assembly where the CPU has AVX-512BW).

Portability: the PMADDWD intrinsic is used only when the CPU Numba compiles for has AVX-512BW
(``HAS_PMADDWD_512``); elsewhere the same sums are written as plain vector IR (sign-extend,
multiply, add even and odd lanes), which LLVM lowers on any target, more slowly. The integer
sums are exact either way, and the float part is the same IR, so both give the same bits.

Determinism: no fast-math flags. The FMA is the ``llvm.fma`` intrinsic (one rounding, every
build), the final 16 lanes are summed in one fixed pairwise tree. The serial and parallel
kernel builds inline the same IR, so they agree bit for bit (infer/build_choice.py needs it).
"""
from __future__ import annotations

import llvmlite.binding as _llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils, config
from numba.extending import intrinsic


def _host_has_avx512bw() -> bool:
    if config.CPU_NAME not in (None, "host"):        # compiling for another CPU: be generic
        return False
    try:
        return bool(_llvm.get_host_cpu_features().get("avx512bw", False))
    except Exception:                                # non-x86 hosts may not report features
        return False


HAS_PMADDWD_512 = _host_has_avx512bw()
"""True: the block product is one VPMADDWD (x86 with AVX-512BW); False: generic vector IR."""

_I8, _I16, _I32, _I64, _F32 = ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64), ir.FloatType()
_V16I8, _V32I8 = ir.VectorType(_I8, 16), ir.VectorType(_I8, 32)
_V32I16, _V16I32, _V16F32 = ir.VectorType(_I16, 32), ir.VectorType(_I32, 16), ir.VectorType(_F32, 16)


def _idx(values):
    return ir.Constant(ir.VectorType(_I32, len(values)), list(values))


def _pair_products(builder, x16, w8):
    """<32 x i16> x, <32 x i8> w -> <16 x i32>: lane j = x[2j] w[2j] + x[2j+1] w[2j+1]."""
    w16 = builder.sext(w8, _V32I16)
    if HAS_PMADDWD_512:
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_V16I32, [_V32I16, _V32I16]),
                                            "llvm.x86.avx512.pmaddw.d.512")
        return builder.call(fn, [x16, w16])
    even, odd = _idx(range(0, 32, 2)), _idx(range(1, 32, 2))
    xe = builder.sext(builder.shuffle_vector(x16, x16, even), _V16I32)
    xo = builder.sext(builder.shuffle_vector(x16, x16, odd), _V16I32)
    we = builder.sext(builder.shuffle_vector(w16, w16, even), _V16I32)
    wo = builder.sext(builder.shuffle_vector(w16, w16, odd), _V16I32)
    return builder.add(builder.mul(xe, we), builder.mul(xo, wo))


def _int4_block(builder, ptr):
    """16 packed bytes -> <32 x i8> in [-8, 7]: low nibbles are values 0..15, high 16..31
    (ops/quantized_matmul.py's int4 layout)."""
    raw = builder.load(builder.bitcast(ptr, _V16I8.as_pointer()), align=1)
    lo = builder.and_(raw, ir.Constant(_V16I8, [15] * 16))
    hi = builder.lshr(raw, ir.Constant(_V16I8, [4] * 16))
    both = builder.shuffle_vector(lo, hi, _idx(range(32)))
    return builder.sub(both, ir.Constant(_V32I8, [8] * 32))


def _hsum(builder, v):
    """Σ of 16 float lanes in a fixed pairwise order: (lane i) + (lane i + n/2), n = 16, 8, 4, 2."""
    n = 16
    while n > 1:
        h = n // 2
        v = builder.fadd(builder.shuffle_vector(v, v, _idx(range(h))), builder.shuffle_vector(v, v, _idx(range(h, n))))
        n = h
    return builder.extract_element(v, ir.Constant(_I32, 0))


def _make_dot(bits, n_in):
    block_bytes = 32 if bits == 8 else 16

    def impl(typingctx, *args):
        # (x_0..x_{n-1}, dx_0..dx_{n-1}, w0..w3, s0..s3, nb) -> 4·n floats, out[4 m + r] = x_m · w_r
        sig = types.UniTuple(types.float32, 4 * n_in)(*([types.intp] * (2 * n_in + 9)))

        def codegen(context, builder, signature, args):
            bytep, fp = _I8.as_pointer(), _F32.as_pointer()
            xps = [builder.inttoptr(a, bytep) for a in args[:n_in]]
            dxps = [builder.inttoptr(a, fp) for a in args[n_in:2 * n_in]]
            wp = [builder.inttoptr(a, bytep) for a in args[2 * n_in:2 * n_in + 4]]
            sp = [builder.inttoptr(a, fp) for a in args[2 * n_in + 4:2 * n_in + 8]]
            fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_V16F32, [_V16F32] * 3),
                                                 "llvm.fma.v16f32")
            accs = [[cgutils.alloca_once_value(builder, ir.Constant(_V16F32, [0.0] * 16)) for _ in range(4)]
                    for _ in range(n_in)]
            with cgutils.for_range(builder, args[2 * n_in + 8]) as loop:
                b = loop.index
                xoff = builder.mul(b, ir.Constant(_I64, 32))
                x16s, dxbs = [], []
                for m in range(n_in):
                    xv = builder.load(builder.bitcast(builder.gep(xps[m], [xoff]), _V32I8.as_pointer()), align=1)
                    x16s.append(builder.sext(xv, _V32I16))
                    dxbs.append(builder.load(builder.gep(dxps[m], [b])))
                woff = builder.mul(b, ir.Constant(_I64, block_bytes))
                for r in range(4):
                    wptr = builder.gep(wp[r], [woff])
                    if bits == 8:
                        w8 = builder.load(builder.bitcast(wptr, _V32I8.as_pointer()), align=1)
                    else:
                        w8 = _int4_block(builder, wptr)
                    dw = builder.load(builder.gep(sp[r], [b]))
                    for m in range(n_in):        # each loaded weight block meets every input row
                        f = builder.sitofp(_pair_products(builder, x16s[m], w8), _V16F32)
                        d = builder.fmul(dw, dxbs[m])                                  # dw_r[b] * dx_m[b]
                        dv = builder.insert_element(ir.Constant(_V16F32, ir.Undefined), d, ir.Constant(_I32, 0))
                        dv = builder.shuffle_vector(dv, dv, _idx([0] * 16))
                        builder.store(builder.call(fma, [f, dv, builder.load(accs[m][r])]), accs[m][r])
            outs = [_hsum(builder, builder.load(accs[m][r])) for m in range(n_in) for r in range(4)]
            return context.make_tuple(builder, signature.return_type, outs)

        return sig, codegen

    names = [f"x{m}" for m in range(n_in)] + [f"dx{m}" for m in range(n_in)] + \
        ["w0", "w1", "w2", "w3", "s0", "s1", "s2", "s3", "nb"]
    src = f"def dot(typingctx, {', '.join(names)}):\n    return impl(typingctx, {', '.join(names)})\n"
    scope = {"impl": impl}
    exec(src, scope)                     # numba's @intrinsic wants the explicit argument list
    scope["dot"].__name__ = f"dot4x{n_in}_q{bits}"
    return intrinsic(scope["dot"])


dot4_q8 = _make_dot(8, 1)
"""(x_addr, dx_addr, w0..w3, s0..s3, nb) -> 4 float32 dots. Addresses (``arr.ctypes.data`` + byte
offsets) of: the int8 activation row (32·nb bytes, zero padded), its nb float32 block scales, 4
int8 weight rows (32·nb bytes each) and their nb float32 scales. The caller keeps the arrays alive."""
dot4_q4 = _make_dot(4, 1)
"""The same with 4 packed int4 weight rows (16·nb bytes each)."""
dot4x4_q8 = _make_dot(8, 4)
"""(x0..x3, dx0..dx3, w0..w3, s0..s3, nb) -> 16 dots, out[4 m + r]: 4 activation rows at once
(batched decode: each weight block is loaded once for 4 rows); per element the same operations
as ``dot4_q8``, so the same bits."""
dot4x4_q4 = _make_dot(4, 4)


def dot4_ref(xq, dx, wq, dw):
    """float64 reference: xq (32·nb,) ints, dx (nb,), wq (4, 32·nb) ints, dw (4, nb) -> (4,)."""
    import numpy as np
    nb = len(dx)
    isum = (np.asarray(wq, np.int64).reshape(4, nb, 32) * np.asarray(xq, np.int64).reshape(1, nb, 32)).sum(axis=2)
    return (isum * np.asarray(dw, np.float64) * np.asarray(dx, np.float64)).sum(axis=1)


# ----------------------------------------------------------------------------- float32 rows
# The same idea for float32 weights, for batched decode: one (row n, input m) dot product is
# 16 lanes (lane l sums the products k ≡ l mod 16, in k order, one llvm.fma each, the last
# partial 16 through a masked load that reads zeros past K), then the fixed _hsum tree. Each
# element is therefore the same sequence of roundings whether it is computed 4 rows x 1 input at
# a time (``dot4x1_f32``) or 4 x 4 (``dot4x4_f32``, 16 accumulators in registers, each loaded
# weight meeting 4 inputs): batched == single, bit for bit, at any batch size.
def _masked_load(builder, ptr, rem):
    """<16 x float> from ptr, lanes >= rem (an i64 in 1..16) read as 0 and never touched."""
    mask = builder.icmp_unsigned("<", _idx(range(16)),
                                 builder.shuffle_vector(builder.insert_element(ir.Constant(_V16I32, ir.Undefined),
                                                                               builder.trunc(rem, _I32),
                                                                               ir.Constant(_I32, 0)),
                                                        ir.Constant(_V16I32, ir.Undefined), _idx([0] * 16)))
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(_V16F32, [_V16F32.as_pointer(), _I32, ir.VectorType(ir.IntType(1), 16),
                                                  _V16F32]), "llvm.masked.load.v16f32.p0v16f32")
    return builder.call(fn, [builder.bitcast(ptr, _V16F32.as_pointer()), ir.Constant(_I32, 4), mask,
                             ir.Constant(_V16F32, [0.0] * 16)])


def _make_dot_f32(n_in):
    def impl(typingctx, *args):
        # (x_0..x_{n_in-1}, w0..w3, K) addresses of float32 rows -> n_in * 4 floats, [m][r] order
        sig = types.UniTuple(types.float32, 4 * n_in)(*([types.intp] * (n_in + 5)))

        def codegen(context, builder, signature, a):
            fp = _F32.as_pointer()
            xs = [builder.inttoptr(v, fp) for v in a[:n_in]]
            ws = [builder.inttoptr(v, fp) for v in a[n_in:n_in + 4]]
            K = a[n_in + 4]
            fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_V16F32, [_V16F32] * 3),
                                                 "llvm.fma.v16f32")
            accs = [[cgutils.alloca_once_value(builder, ir.Constant(_V16F32, [0.0] * 16)) for _ in range(4)]
                    for _ in range(n_in)]

            def step(load):
                xv = [load(p) for p in xs]
                wv = [load(p) for p in ws]
                for m in range(n_in):
                    for r in range(4):
                        builder.store(builder.call(fma, [xv[m], wv[r], builder.load(accs[m][r])]), accs[m][r])

            nfull = builder.udiv(K, ir.Constant(_I64, 16))
            with cgutils.for_range(builder, nfull) as loop:
                off = builder.mul(loop.index, ir.Constant(_I64, 16))
                step(lambda p: builder.load(builder.bitcast(builder.gep(p, [off]), _V16F32.as_pointer()), align=4))
            rem = builder.urem(K, ir.Constant(_I64, 16))
            with builder.if_then(builder.icmp_unsigned("!=", rem, ir.Constant(_I64, 0))):
                off = builder.mul(nfull, ir.Constant(_I64, 16))
                step(lambda p: _masked_load(builder, builder.gep(p, [off]), rem))
            outs = [_hsum(builder, builder.load(accs[m][r])) for m in range(n_in) for r in range(4)]
            return context.make_tuple(builder, signature.return_type, outs)

        return sig, codegen

    # numba's @intrinsic needs the explicit argument list
    names = [f"x{m}" for m in range(n_in)] + ["w0", "w1", "w2", "w3", "k"]
    src = f"def dot(typingctx, {', '.join(names)}):\n    return impl(typingctx, {', '.join(names)})\n"
    scope = {"impl": impl}
    exec(src, scope)
    scope["dot"].__name__ = f"dot4x{n_in}_f32"
    return intrinsic(scope["dot"])


dot4x1_f32 = _make_dot_f32(1)
"""(x, w0, w1, w2, w3, K) addresses -> 4 float32 dots x·w_r (see above)."""
dot4x4_f32 = _make_dot_f32(4)
"""(x0..x3, w0..w3, K) -> 16 float32 dots, out[4 m + r] = x_m · w_r, each bit-equal to dot4x1_f32's."""
