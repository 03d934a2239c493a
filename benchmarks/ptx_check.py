"""Hardware compile check: every CUDA kernel scratchgpt launches, compiled for a real GPU (sm_90).

No GPU has run our kernels; the simulator (NUMBA_ENABLE_CUDASIM=1) runs them as Python and never
type-checks them for the device. This script compiles each one the way numba-cuda would on an
H100/H200, without a GPU: NVVM turns it into PTX, ``ptxas`` into machine code, and ptxas says how
many registers, how much shared memory and how many spills each kernel needs.

Two steps, each in its own process (numba reads NUMBA_ENABLE_CUDASIM once):
  1. record (simulator): run the paths that launch kernels — a tiny GPT's training steps (AdamW,
     SGD, dropout, cross-entropy with ignore_index, gradient clipping, smear, LoRA / adapter /
     prefix), the inference engine's prefill and decode (float32, int8, int4; greedy on the device,
     sampling on the host) and ``benchmarks/gpu_check.py --sim``'s kernels — with a hook on the
     simulator's kernel launch that notes, per launch: the kernel (module, qualified name, and the
     arguments of the factory that built it, e.g. ``_kernels(np.float32)``), the numba type of each
     argument (what numba-cuda types a launch with), the block shape and dynamic shared memory.
     ``--workload tests`` records from ``tests/test_cuda_*.py`` instead (slower, more signatures);
  2. compile (no simulator; CUDA toolkit + NVRTC): each distinct (kernel, argument types) once, with
     the kernel's own jit options, by ``numba.cuda.compile_ptx(cc=(9, 0))``; then
     ``ptxas -v --gpu-name sm_90`` on the PTX.

Flags (any one fails the check; exit status 1):
  - ``compile``: NVVM or ptxas refused the kernel (a typing error the simulator never sees);
  - ``registers``: registers x threads per block (largest block launched — for a
    ``cuda_arrays.launch1`` kernel its full THREADS, which real sizes reach; allocated per warp
    in units of 256) > 65,536, the register file of one SM: the launch would fail on the GPU;
  - ``block``: more than 1,024 threads per block (the simulator runs any number);
  - ``shared``: static shared memory > 48 KiB (the most a kernel gets without opting in), or
    static + dynamic > 48 KiB;
  - ``spill``: any spill store or load (local memory traffic in a hot loop);
  - ``f64``: float64 instructions in a kernel launched with float32 arrays only (the CUDA rule of
    issue 11: float32 literals and accumulators — a Python float literal or argument turns
    float32 arithmetic into float64, 1/64 of the FP32 rate on consumer GPUs).
    Kernels that accumulate in float64 on purpose are listed in ``F64_BY_DESIGN`` with the reason.

What it proves: the kernel compiles for the hardware and fits its resources at the launch shapes
used. What it does not: that the kernel computes the right thing on a GPU (the simulator tests
check the math; a real GPU run — benchmarks/gpu_check.py — checks both) or how fast it is.

    python benchmarks/ptx_check.py [--json out.json] [--workload tests] [--cc 8.0] [--no-shuffle]

``--cc`` compiles for another GPU generation; ``--no-shuffle`` compiles the shared-memory
fallbacks of the warp-shuffle paths (what ``SCRATCHGPT_CUDA_SHUFFLE=0`` runs on a GPU, and what
the simulator tests check) instead of the shuffles a GPU runs by default.

Needs: the CUDA toolkit's libnvvm and ptxas (``CUDA_HOME``, else /usr/local/cuda*), NVRTC (the
PyPI wheel ``nvidia-cuda-nvrtc``, in the ``test`` extra; numba-cuda asks it which GPUs it can
target) and numba-cuda. Compiled results are cached (``--cache``, keyed by the CUDA sources and
the signature), so a re-run compiles only what changed.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The target: sm_90 (H100 / H200, the GPU this project is lent). --cc 8.0 etc. checks another one;
# it travels to the compile process in SCRATCHGPT_PTX_CC.
CC = tuple(int(x) for x in os.environ.get("SCRATCHGPT_PTX_CC", "9.0").split("."))
GPU_NAME = f"sm_{CC[0]}{CC[1]}"
REGISTER_FILE = 65536          # 32-bit registers per SM (and the most one block may use), sm_50..sm_90
SHARED_STATIC_MAX = 48 * 1024  # bytes of shared memory a block gets without cudaFuncSetAttribute
DEFAULT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "scratchgpt", "ptx_check")
MAX_BLOCK = 1024               # threads per block, every GPU since sm_20 (the simulator does not check)
REG_UNIT = 256                 # registers are allocated per warp in units of 256 (8 per thread)

# Kernels whose float64 arithmetic is the point (launched with float32 data): name -> why.
F64_BY_DESIGN = {
    "scratchgpt.cuda_arrays._sumsq_partial":
        "gradient-norm partial sums in float64, like the CPU's math.fsum over float64 squares "
        "(optim/clip.py): the clip coefficient must not depend on the device",
}


# ------------------------------------------------------------------------------ toolkit
def find_toolkit() -> tuple[dict | None, str]:
    """(paths, "") when libnvvm and ptxas are found, else (None, reason)."""
    homes = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")]
    homes += sorted(glob.glob("/usr/local/cuda-*"), reverse=True) + ["/usr/local/cuda"]
    for home in [h for h in homes if h]:
        nvvm = sorted(glob.glob(os.path.join(home, "lib*", "libnvvm.so*")) +
                      glob.glob(os.path.join(home, "nvvm", "lib64", "libnvvm.so*")))
        ptxas = os.path.join(home, "bin", "ptxas")
        if nvvm and os.access(ptxas, os.X_OK):
            return {"cuda_home": home, "libnvvm": nvvm[0], "ptxas": ptxas}, ""
    return None, ("no CUDA toolkit with libnvvm and ptxas (looked in $CUDA_HOME, $CUDA_PATH, "
                  "/usr/local/cuda*)")


def find_nvrtc() -> tuple[str | None, str]:
    """The NVRTC library numba-cuda will load, found the way it finds it (cuda.pathfinder: the
    nvidia-cuda-nvrtc wheel, then the system and CUDA_HOME), else (None, reason)."""
    try:
        from cuda.pathfinder import load_nvidia_dynamic_lib
        return load_nvidia_dynamic_lib("nvrtc").abs_path, ""
    except Exception as e:      # noqa: BLE001 - not installed / not found: the reason below
        return None, (f"no NVRTC library ({type(e).__name__}); pip install nvidia-cuda-nvrtc "
                      "(it is in the 'test' extra)")


def requirements() -> tuple[bool, str]:
    """(True, "") when this machine can run the check, else (False, the reason in one line)."""
    tk, why = find_toolkit()
    if tk is None:
        return False, why
    lib, why = find_nvrtc()
    if lib is None:
        return False, why
    try:
        import numba_cuda  # noqa: F401
    except ImportError:
        return False, "numba-cuda is not installed (the 'test' extra)"
    return True, ""


def sources_digest() -> str:
    """Hash of every file a kernel's code can come from: a change anywhere invalidates the cache."""
    h = hashlib.sha256()
    files = sorted(glob.glob(os.path.join(ROOT, "scratchgpt", "ops", "*_cuda.py")))
    files += [os.path.join(ROOT, "scratchgpt", n) for n in ("cuda_arrays.py", "backend.py")]
    for f in files:
        h.update(os.path.relpath(f, ROOT).encode())
        with open(f, "rb") as fh:
            h.update(fh.read())
    import numba_cuda
    # the warp-shuffle switch changes what cuda_arrays' helpers compile to (cuda_arrays.WARP_SHUFFLE)
    shuffle = os.environ.get("SCRATCHGPT_CUDA_SHUFFLE", "1")
    h.update(f"numba-cuda {numba_cuda.__version__} cc {CC} shuffle {shuffle} schema {_SCHEMA}".encode())
    return h.hexdigest()


_SCHEMA = 1


# ------------------------------------------------------------------------------ step 1: record
def _encode(value):
    import numpy as np
    if isinstance(value, type) and issubclass(value, np.generic):
        return {"np_type": np.dtype(value).name}
    if isinstance(value, np.dtype):
        return {"np_dtype": value.name}
    if isinstance(value, (bool, int, float, str)) or value is None:
        return {"py": value}
    raise TypeError(f"cannot record a factory argument of type {type(value).__name__}")


def _decode(spec):
    import numpy as np
    if "np_type" in spec:
        return np.dtype(spec["np_type"]).type
    if "np_dtype" in spec:
        return np.dtype(spec["np_dtype"])
    return spec["py"]


def _closure_values(fn, depth=0):
    """name -> value of the free variables of ``fn`` and of the kernels it closes over."""
    out = {}
    if fn.__closure__ is None or depth > 3:
        return out
    for name, cell in zip(fn.__code__.co_freevars, fn.__closure__):
        try:
            v = cell.cell_contents
        except ValueError:
            continue
        out.setdefault(name, v)
        inner = getattr(v, "fn", None) or getattr(v, "py_func", None)
        if callable(inner) and hasattr(inner, "__code__"):
            for k, w in _closure_values(inner, depth + 1).items():
                out.setdefault(k, w)
    return out


def _arg_type(value) -> str:
    """The numba type numba-cuda gives a launch argument, as text (``array(float32, 2d, C)``)."""
    import numba
    import numpy as np
    from numba.core.typing.typeof import Purpose
    ary = getattr(value, "_ary", None)          # the simulator's device array wraps a NumPy one
    if isinstance(ary, np.ndarray):
        value = ary
    t = numba.typeof(value, Purpose.argument)
    if isinstance(t, numba.types.Array):
        t = t.copy(readonly=False)              # device arrays are never read-only
    return str(t)


def _kernel_id(fn) -> dict:
    import inspect
    module, qualname = fn.__module__, fn.__qualname__
    entry = {"module": module, "qualname": qualname, "factory": None}
    if ".<locals>." in qualname:
        fname = qualname.split(".<locals>.")[0]
        if "." in fname or qualname.count(".<locals>.") > 1:
            entry["error"] = f"kernel built by a nested factory {qualname}: not reconstructible"
            return entry
        factory = getattr(sys.modules[module], fname)
        values = _closure_values(fn)
        args = []
        for p in inspect.signature(factory).parameters:
            if p in values:
                args.append(_encode(values[p]))
            else:
                args.append(None)               # the kernel does not use it: any value builds the same code
        entry["factory"] = {"name": fname, "args": args}
    return entry


def _launch_site(depth=3) -> list[str]:
    """The innermost ``depth`` frames of scratchgpt / tests / benchmarks code that led to a launch
    ("ops/matmul_cuda.py:97 matmul2d_cuda"), skipping numba, this file and cuda_arrays.launch."""
    out = []
    f = sys._getframe(2)
    here = os.path.abspath(__file__)
    while f is not None and len(out) < depth:
        fn = os.path.abspath(f.f_code.co_filename)
        if fn.startswith(ROOT) and fn != here and not fn.endswith("cuda_arrays.py"):
            out.append(f"{os.path.relpath(fn, ROOT)}:{f.f_lineno} {f.f_code.co_name}")
        f = f.f_back
    return out


class Recorder:
    """Patches the simulator's kernel launch to note every launch's kernel and argument types."""

    def __init__(self):
        self.launches: dict[str, dict] = {}
        self.skipped: set[str] = set()

    def install(self):
        from numba.cuda.simulator import kernel as sim_kernel
        cls = sim_kernel.FakeCUDAKernel
        original = cls.__call__
        rec = self

        def __call__(kernel, *args):
            if not (kernel._device or sim_kernel._kernel_context):
                if kernel.fn.__module__.startswith("scratchgpt."):
                    rec.note(kernel, args)
                else:                           # kernels the tests define to probe the simulator itself
                    rec.skipped.add(f"{kernel.fn.__module__}.{kernel.fn.__qualname__}")
            return original(kernel, *args)

        cls.__call__ = __call__

    def note(self, kernel, args):
        entry = _kernel_id(kernel.fn)
        entry["site"] = _launch_site()
        # cuda_arrays.launch1 sizes a block to the work (fewer threads for tiny arrays): at real
        # sizes it launches THREADS, so that is the block the resource check must assume
        f, launch1 = sys._getframe(1), False
        while f is not None and not launch1:
            launch1 = f.f_code.co_name == "launch1" and f.f_code.co_filename.endswith("cuda_arrays.py")
            f = f.f_back
        entry["argtypes"] = [_arg_type(a) for a in args]
        entry["fastmath_sim"] = bool(kernel._fastmath)
        block = tuple(int(d) for d in kernel.block_dim)
        threads = block[0] * block[1] * block[2]
        key = json.dumps([entry["module"], entry["qualname"], entry["factory"], entry["argtypes"]], sort_keys=True)
        seen = self.launches.get(key)
        if seen is None:
            entry.update(launches=0, max_threads=0, max_block=block, max_dynshared=0)
            self.launches[key] = seen = entry
        seen["launches"] += 1
        if launch1:
            from scratchgpt.cuda_arrays import THREADS
            seen["launch1"] = True
            threads, block = max(threads, THREADS), (max(threads, THREADS), 1, 1)
        if threads > seen["max_threads"]:
            seen["max_threads"], seen["max_block"] = threads, block
        seen["max_dynshared"] = max(seen["max_dynshared"], int(kernel.dynshared_size or 0))


def _tiny_batch(rng, cfg, B=2, T=6):
    idx = rng.integers(0, cfg.vocab_size, (B, T))
    tgt = rng.integers(0, cfg.vocab_size, (B, T))
    tgt[0, 1] = -100                                            # ignore_index
    return idx, tgt


def section_train(smears=(False, True)):
    """Training steps: dropout on, smear gate, AdamW with gradient clipping, then SGD (momentum,
    Nesterov, weight decay); cross-entropy with an ignored target."""
    import numpy as np
    from scratchgpt.models import GPT, GPTConfig
    from scratchgpt.optim import SGD, AdamW
    from scratchgpt.optim.clip import clip_grad_norm
    rng = np.random.default_rng(0)
    for smear in smears:
        cfg = GPTConfig(vocab_size=37, block_size=8, n_layer=1, n_head=2, n_embd=32, dropout=0.1, bias=True,
                        smear=smear)
        m = GPT(cfg, seed=0, device="cuda")
        m.train()
        for opt in (AdamW(m.parameters(), lr=1e-3, weight_decay=0.1),
                    SGD(m.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)):
            opt.zero_grad()
            _, loss = m(*_tiny_batch(rng, cfg))
            loss.backward()
            clip_grad_norm(m.parameters(), 1e-3)                # small: the scaling kernel runs too
            opt.step()


def section_peft(methods=("lora", "adapter", "prefix")):
    """Parameter-efficient fine-tuning on the device: LoRA (with dropout), adapter, prefix."""
    import numpy as np
    from scratchgpt.models import GPT, GPTConfig
    from scratchgpt.nn.peft import apply_peft
    from scratchgpt.optim import AdamW
    rng = np.random.default_rng(1)
    kws = {"lora": {"rank": 2, "dropout": 0.1}, "adapter": {"adapter_size": 4}, "prefix": {"prefix_len": 3}}
    for method in methods:
        cfg = GPTConfig(vocab_size=37, block_size=8, n_layer=1, n_head=2, n_embd=32, dropout=0.0)
        m = GPT(cfg, seed=1)
        apply_peft(m, method, seed=1, **kws[method])
        m.to("cuda")
        m.train()
        opt = AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-3)
        _, loss = m(*_tiny_batch(rng, cfg))
        loss.backward()
        opt.step()


def section_engine(long_prompt=True, bits=(8, 4), sampled=True, new_tokens=3):
    """The inference engine: float32 (two requests batched, greedy on the device; sampled on the
    host), a long prompt (the tiled prefill), int8 and int4 weights."""
    from scratchgpt.infer import Engine, GenerationRequest, SamplingParams
    from scratchgpt.infer.quantize import QuantConfig, quantize_gpt
    sys.path.insert(0, ROOT)
    from tests.infer_helpers import tiny_gpt

    def run(engine, prompts, params):
        for p in prompts:
            engine.add(GenerationRequest(p, params))
        while engine.has_work():
            engine.step()

    greedy = SamplingParams(max_new_tokens=new_tokens, ignore_eos=True)
    model = tiny_gpt(seed=0, vocab=29, block=40, n_layer=1, n_embd=32, smear=True)
    run(Engine(model, None, max_batch_size=2, device="cuda"), [[1, 5, 7], [2, 9, 4, 11, 3]], greedy)
    if sampled:
        run(Engine(model, None, max_batch_size=2, device="cuda"), [[1, 5, 7]],
            SamplingParams(max_new_tokens=new_tokens, ignore_eos=True, temperature=0.8, top_k=5, top_p=0.9, seed=1))
    if long_prompt:
        run(Engine(model, None, max_batch_size=1, device="cuda"), [[i % 29 for i in range(1, 37)]], greedy)
    for b in bits:
        q = quantize_gpt(tiny_gpt(seed=2, vocab=23, block=12, n_layer=1, n_embd=32),
                         QuantConfig(bits=b, act_quant=False))
        run(Engine(q, None, max_batch_size=2, device="cuda"), [[3, 1, 4], [2, 2]][:2 if long_prompt else 1], greedy)


def section_kernel_checks():
    """Every kernel benchmarks/gpu_check.py validates, at its simulator sizes (the simple
    attention variants, cross-attention, split decode attention ...)."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import gpu_check
    gpu_check.kernel_checks(sim=True, repeats=1, use_torch=False)


WORKLOADS = {
    # everything above: the default
    "scenario": (section_train, section_peft, section_engine, section_kernel_checks),
    # the test suite's share (tests/test_ptx_check.py): one of each path, fewer repeats
    "quick": (lambda: section_train(smears=(True,)), lambda: section_peft(("lora",)),
              lambda: section_engine(long_prompt=False, bits=(4,), sampled=False, new_tokens=2)),
}


def workload_sections(name) -> dict:
    """Run a workload's sections on the simulated GPU; seconds per section."""
    from scratchgpt import backend
    backend.check_device("cuda")
    times = {}
    for i, fn in enumerate(WORKLOADS[name]):
        t0 = time.perf_counter()
        fn()
        times[getattr(fn, "__name__", str(i)).replace("<lambda>", f"part{i}")] = round(time.perf_counter() - t0, 2)
    return times


def workload_tests(pytest_args=()):
    """Everything tests/test_cuda_*.py launches (minutes on the simulator)."""
    import pytest
    files = sorted(glob.glob(os.path.join(ROOT, "tests", "test_cuda_*.py")))
    rc = pytest.main(["-q", "-p", "no:cacheprovider", "-x", *files, *pytest_args])
    if rc not in (0, 5):
        raise SystemExit(f"tests/test_cuda_*.py failed (pytest exit {rc}): fix them before checking the PTX")


def record_main(out_path: str, workload: str):
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    sys.path.insert(0, ROOT)
    from scratchgpt import backend
    backend.enable_simulator()
    backend.cuda_module()
    rec = Recorder()
    rec.install()
    # the decode row kernels pick their block shape by device kind (fewer threads on the simulator,
    # which pays per thread): record the block shape a real GPU launches them with
    from scratchgpt.ops import decode_layernorm_cuda, decode_matmul_cuda
    for mod in (decode_layernorm_cuda, decode_matmul_cuda):
        mod.simulator_enabled = lambda: False
    t0 = time.perf_counter()
    sections = {}
    if workload == "tests":
        workload_tests()
    else:
        sections = workload_sections(workload)
    with open(out_path, "w") as f:
        json.dump({"workload": workload, "seconds": time.perf_counter() - t0, "sections": sections,
                   "not_project_kernels": sorted(rec.skipped), "kernels": list(rec.launches.values())}, f, indent=1)


# ------------------------------------------------------------------------------ step 2: compile
def _parse_type(text: str):
    """``array(float32, 2d, C)`` / ``int64`` / ``bool`` -> the numba type."""
    from numba.core import types
    m = re.fullmatch(r"array\((\w+), (\d+)d, ([CFA])\)", text)
    if m:
        return types.Array(getattr(types, m.group(1)), int(m.group(2)), m.group(3))
    if text == "bool":
        return types.boolean
    t = getattr(types, text, None)
    if not isinstance(t, types.Type):
        raise TypeError(f"cannot rebuild the numba type {text!r}")
    return t


def _find_dispatcher(entry):
    import importlib
    mod = importlib.import_module(entry["module"])
    if entry.get("error"):
        raise LookupError(entry["error"])
    if entry["factory"]:
        factory = getattr(mod, entry["factory"]["name"])
        args = [_decode(a) if a is not None else _default_arg() for a in entry["factory"]["args"]]
        pool = [factory(*args)]
    else:
        pool = [getattr(mod, entry["qualname"], None)] + list(vars(mod).values())
    seen = set()
    while pool:
        obj = pool.pop(0)
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        fn = getattr(obj, "py_func", None)
        if fn is not None and hasattr(obj, "targetoptions") and fn.__qualname__ == entry["qualname"] \
                and fn.__module__ == entry["module"]:
            return obj
        if isinstance(obj, (tuple, list)):
            pool.extend(obj)
        elif isinstance(obj, dict):
            pool.extend(obj.values())
        elif type(obj).__name__ == "SimpleNamespace":
            pool.extend(vars(obj).values())
    raise LookupError(f"kernel {entry['module']}.{entry['qualname']} not found when the module is imported "
                      "without the simulator")


def _default_arg():
    import numpy as np
    return np.float32


def _ptx_f64(ptx: str) -> int:
    """Number of PTX instructions that compute in (or convert to/from) float64."""
    n = 0
    for line in ptx.splitlines():
        s = line.strip()
        if not s or s.startswith(("//", ".reg", ".param", ".local", ".shared", ".global", ".const", ".func",
                                  ".visible", ".entry", ".extern")):
            continue
        if re.search(r"\.f64\b", s):
            n += 1
    return n


_PTXAS_FUNC = re.compile(r"Compiling entry function '([^']+)'")
_PTXAS_USED = re.compile(r"Used (\d+) registers(?:, used (\d+) barriers)?(?:, (\d+) bytes smem)?")
_PTXAS_SPILL = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")


def run_ptxas(ptxas: str, ptx: str) -> dict:
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "k.ptx")
        with open(src, "w") as f:
            f.write(ptx)
        p = subprocess.run([ptxas, "-v", "--gpu-name", GPU_NAME, "-o", os.path.join(d, "k.cubin"), src],
                           capture_output=True, text=True)
    log = p.stdout + p.stderr
    if p.returncode != 0:
        return {"ptxas_error": log.strip()[-2000:]}
    # the entry's block: after "Compiling entry function", its "Function properties" then "Used"
    entry_part = log.split("Compiling entry function", 1)[-1]
    used = _PTXAS_USED.search(entry_part)
    spill = _PTXAS_SPILL.search(entry_part)
    spill_all = [tuple(int(x) for x in m.groups()) for m in _PTXAS_SPILL.finditer(log)]
    return {
        "registers": int(used.group(1)) if used else None,
        "barriers": int(used.group(2) or 0) if used else None,
        "smem": int(used.group(3) or 0) if used else None,
        "stack": int(spill.group(1)) if spill else 0,
        "spill_stores": max([s[1] for s in spill_all] or [0]),
        "spill_loads": max([s[2] for s in spill_all] or [0]),
    }


def flags_of(entry, res) -> list[str]:
    if "compile_error" in res or "ptxas_error" in res:
        return ["compile"]
    out = []
    regs = res["registers"] or 0
    threads = entry["max_threads"]
    warps = (threads + 31) // 32
    per_warp = -(-regs * 32 // REG_UNIT) * REG_UNIT
    res["register_file_used"] = warps * per_warp
    if warps * per_warp > REGISTER_FILE or regs > 255:
        out.append("registers")
    if threads > MAX_BLOCK:
        out.append("block")
    if res["smem"] > SHARED_STATIC_MAX or res["smem"] + entry["max_dynshared"] > SHARED_STATIC_MAX:
        out.append("shared")
    if res["spill_stores"] or res["spill_loads"]:
        out.append("spill")
    float_arrays = re.findall(r"array\((float\d+)", " ".join(entry["argtypes"]))
    meant_f32 = bool(float_arrays) and all(t == "float32" for t in float_arrays)
    res["meant_float32"] = meant_f32
    name = f"{entry['module']}.{entry['qualname']}"
    if meant_f32 and res["f64_instructions"] and name not in F64_BY_DESIGN:
        out.append("f64")
    return out


def _no_gpu_compute_capability():
    """numba-cuda compiles a device function (a ``@cuda.jit(device=True)`` helper a kernel calls)
    for the compute capability of the current GPU, which it asks the driver for; there is no GPU
    (nor driver) here, so it is told the target of this check instead."""
    import types

    import numba.cuda.compiler as compiler
    import numba.cuda.dispatcher as dispatcher
    target = types.SimpleNamespace(compute_capability=CC)
    dispatcher.get_current_device = compiler.get_current_device = lambda: target


def compile_one(entry, ptxas: str) -> dict:
    from numba import cuda
    t0 = time.perf_counter()
    try:
        disp = _find_dispatcher(entry)
        opts = disp.targetoptions
        argtypes = tuple(_parse_type(t) for t in entry["argtypes"])
        kw = {k: opts[k] for k in ("debug", "lineinfo", "fastmath", "opt", "launch_bounds") if k in opts}
        ptx, _ = cuda.compile_ptx(disp.py_func, argtypes, cc=CC, **kw)
    except Exception as e:     # noqa: BLE001 - reported as this kernel's failure
        msg = f"{type(e).__name__}: {e}"
        return {"compile_error": msg[-3000:], "compile_s": time.perf_counter() - t0}
    res = {"compile_s": time.perf_counter() - t0, "jit_options": {k: v for k, v in kw.items()},
           "f64_instructions": _ptx_f64(ptx), "ptx_lines": ptx.count("\n")}
    res.update(run_ptxas(ptxas, ptx))
    return res


def compile_main(record_path: str, out_path: str, cache_dir: str | None, only: str | None, limit: int | None):
    os.environ["NUMBA_ENABLE_CUDASIM"] = "0"
    sys.path.insert(0, ROOT)
    tk, why = find_toolkit()
    if tk is None:
        raise SystemExit(why)
    os.environ.setdefault("CUDA_HOME", tk["cuda_home"])
    with open(record_path) as f:
        recorded = json.load(f)
    entries = recorded["kernels"]
    if only:
        entries = [e for e in entries if re.search(only, f"{e['module']}.{e['qualname']}")]
    entries.sort(key=lambda e: (e["module"], e["qualname"], e["argtypes"]))
    if limit:
        entries = representative(entries, limit)
    _no_gpu_compute_capability()
    digest = sources_digest()
    cache = {}
    cache_file = os.path.join(cache_dir, f"{digest[:24]}.json") if cache_dir else None
    if cache_file and os.path.exists(cache_file):
        with open(cache_file) as f:
            cache = json.load(f)
    rows = []
    for e in entries:
        key = hashlib.sha256(json.dumps([e["module"], e["qualname"], e["factory"], e["argtypes"],
                                         _module_digest(e["module"])], sort_keys=True).encode()).hexdigest()
        res = cache.get(key)
        cached = res is not None
        if res is None:
            res = compile_one(e, tk["ptxas"])
            cache[key] = res
        res = dict(res)
        row = dict(e)
        row.update(res)
        row["cached"] = cached
        row["flags"] = flags_of(e, row)
        rows.append(row)
        took = "cached" if cached else "%5.1fs" % res["compile_s"]
        print(f"  {took} {e['module'].rsplit('.', 1)[-1]}.{e['qualname'].rsplit('.', 1)[-1]} "
              f"{','.join(row['flags']) or 'ok'}", file=sys.stderr, flush=True)
    if cache_file:
        os.makedirs(cache_dir, exist_ok=True)
        with open(cache_file, "w") as f:
            json.dump(cache, f)
    import numba
    import numba_cuda
    report = {
        "toolkit": tk, "cc": list(CC), "warp_shuffle": _warp_shuffle(),
        "numba": numba.__version__, "numba_cuda": numba_cuda.__version__,
        "nvrtc": find_nvrtc()[0], "workload": recorded["workload"], "record_s": round(recorded["seconds"], 1),
        "record_sections": recorded.get("sections", {}),
        "kernels": rows,
        "summary": summarize(rows),
    }
    with open(out_path, "w") as f:
        json.dump(report, f, indent=1)


def _warp_shuffle() -> bool:
    from scratchgpt import cuda_arrays
    return bool(cuda_arrays.WARP_SHUFFLE)


def _module_digest(module: str) -> str:
    """Hash of the kernel's own source file (the cache key has it: kernels outside scratchgpt/ops too)."""
    import importlib.util
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        return "not importable"                 # compile_one reports it as this kernel's failure
    with open(spec.origin, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def representative(entries, limit):
    """At most ``limit`` entries, one per distinct kernel first (its float32 build when there is one)."""
    by_kernel = {}
    for e in entries:
        k = (e["module"], e["qualname"])
        f32 = "float64" not in " ".join(e["argtypes"])
        if k not in by_kernel or (f32 and "float64" in " ".join(by_kernel[k]["argtypes"])):
            by_kernel[k] = e
    return list(by_kernel.values())[:limit]


def summarize(rows) -> dict:
    kernels = {(r["module"], r["qualname"]) for r in rows}
    flagged = [r for r in rows if r["flags"]]
    counts = {}
    for r in flagged:
        for fl in r["flags"]:
            counts[fl] = counts.get(fl, 0) + 1
    return {"kernels": len(kernels), "signatures": len(rows),
            "compiled": sum(1 for r in rows if "compile" not in r["flags"]),
            "flagged": len(flagged), "flag_counts": counts,
            "flagged_kernels": sorted({f"{r['module']}.{r['qualname']}" for r in flagged}),
            "compile_s": round(sum(r.get("compile_s", 0.0) for r in rows if not r["cached"]), 1)}


# ------------------------------------------------------------------------------ driver
def _env(sim: bool):
    env = dict(os.environ)
    env["NUMBA_ENABLE_CUDASIM"] = "1" if sim else "0"
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for var in ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        env.setdefault(var, "1")
    return env


def run(workload="scenario", cache_dir=None, only=None, limit=None, record_path=None) -> dict:
    """Both steps in child processes; returns the report (see compile_main)."""
    ok, why = requirements()
    if not ok:
        raise RuntimeError(why)
    with tempfile.TemporaryDirectory() as d:
        rec = record_path or os.path.join(d, "record.json")
        if not (record_path and os.path.exists(record_path)):
            subprocess.run([sys.executable, __file__, "--_record", rec, "--workload", workload],
                           env=_env(True), check=True, cwd=ROOT)
        out = os.path.join(d, "report.json")
        cmd = [sys.executable, __file__, "--_compile", rec, "--_out", out]
        if cache_dir:
            cmd += ["--cache", cache_dir]
        if only:
            cmd += ["--only", only]
        if limit:
            cmd += ["--limit", str(limit)]
        subprocess.run(cmd, env=_env(False), check=True, cwd=ROOT)
        with open(out) as f:
            return json.load(f)


def table(report) -> str:
    lines = [f"{'kernel':46s} {'argtypes':>8s} {'thr':>5s} {'regs':>4s} {'smem':>6s} {'stack':>5s} {'spill':>5s} "
             f"{'f64':>4s}  flags"]
    for r in report["kernels"]:
        name = f"{r['module'].rsplit('.', 1)[-1]}.{r['qualname'].split('.<locals>.')[-1]}"
        dts = sorted(set(re.findall(r"array\((float\d+)", " ".join(r["argtypes"]))))
        dts = "/".join(d.replace("float", "f") for d in dts) or "-"
        if "compile" in r["flags"]:
            why = (r.get("compile_error") or r.get("ptxas_error", "")).splitlines()[0][:120]
            lines.append(f"{name:46s} {dts:>8s} {r['max_threads']:5d} {'':31s}  COMPILE: {why}")
            continue
        spill = r["spill_stores"] + r["spill_loads"]
        lines.append(f"{name:46s} {dts:>8s} {r['max_threads']:5d} {r['registers']:4d} {r['smem']:6d} {r['stack']:5d} "
                     f"{spill:5d} {r['f64_instructions']:4d}  {','.join(r['flags'])}")
    s = report["summary"]
    target = "sm_" + "".join(map(str, report["cc"])) + ("" if report.get("warp_shuffle", True)
                                                         else " (shared-memory fallbacks)")
    lines.append(f"{s['kernels']} kernels, {s['signatures']} signatures: {s['compiled']} compiled for {target}, "
                 f"{s['flagged']} flagged {s['flag_counts'] or ''} (compile {s['compile_s']} s)")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", choices=tuple(WORKLOADS) + ("tests",), default="scenario")
    ap.add_argument("--json", help="write the report here")
    ap.add_argument("--cache", default=None,
                    help=f"compiled-result cache folder (default {DEFAULT_CACHE}; '' for none)")
    ap.add_argument("--only", help="regex on module.qualname: compile only these kernels")
    ap.add_argument("--limit", type=int, help="at most this many signatures, one per kernel first")
    ap.add_argument("--record", help="reuse (or keep) the launch record at this path")
    ap.add_argument("--cc", help="compute capability to compile for, e.g. 8.0 (default 9.0: H100/H200)")
    ap.add_argument("--no-shuffle", action="store_true",
                    help="compile the shared-memory fallbacks of the warp-shuffle paths (SCRATCHGPT_CUDA_SHUFFLE=0)")
    ap.add_argument("--_record", help=argparse.SUPPRESS)
    ap.add_argument("--_compile", help=argparse.SUPPRESS)
    ap.add_argument("--_out", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a._record:
        record_main(a._record, a.workload)
        return 0
    if a._compile:
        compile_main(a._compile, a._out, a.cache or None, a.only, a.limit)
        return 0
    ok, why = requirements()
    if not ok:
        print(f"ptx_check: cannot run here: {why}", file=sys.stderr)
        return 2
    if a.cc:
        if not re.fullmatch(r"\d+\.\d", a.cc):
            print(f"ptx_check: --cc: expected MAJOR.MINOR like 8.0, got {a.cc!r}", file=sys.stderr)
            return 2
        os.environ["SCRATCHGPT_PTX_CC"] = a.cc          # the compile process reads it (CC above)
    if a.no_shuffle:
        os.environ["SCRATCHGPT_CUDA_SHUFFLE"] = "0"
    if a.record and not os.path.exists(a.record):
        subprocess.run([sys.executable, __file__, "--_record", a.record, "--workload", a.workload],
                       env=_env(True), check=True, cwd=ROOT)
    cache = DEFAULT_CACHE if a.cache is None else (a.cache or None)
    report = run(a.workload, cache, a.only, a.limit, a.record)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)
    print(table(report))
    return 1 if report["summary"]["flagged"] else 0


if __name__ == "__main__":
    sys.exit(main())
