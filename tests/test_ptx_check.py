"""The hardware compile check (benchmarks/ptx_check.py): the kernels the training and inference
paths launch compile for a real GPU (sm_90) and fit its registers and shared memory, with no
float64 arithmetic in float32 kernels; and the check flags each fault it is meant to flag.

Needs the CUDA toolkit (libnvvm, ptxas; CI's machine has /usr/local/cuda-13.0) and NVRTC (the
nvidia-cuda-nvrtc wheel, in the test extra); no GPU. Skipped, with the reason, only where there
is no toolkit. The suite runs the "quick" workload (one of each path); the full one
(``python benchmarks/ptx_check.py``: every path and every kernel gpu_check.py validates) and
``--workload tests`` (everything tests/test_cuda_*.py launches) are benchmarks/GPU_RUN.md's.
"""
import json
import os
import subprocess
import sys

import pytest

from benchmark_modules import load_benchmark

ptx_check = load_benchmark("ptx_check")
TOOLKIT, WHY = ptx_check.find_toolkit()
pytestmark = pytest.mark.skipif(TOOLKIT is None, reason=f"hardware compile check: {WHY}")


def test_the_toolchain_is_complete_where_the_toolkit_is():
    ok, why = ptx_check.requirements()
    assert ok, why              # the test extra brings NVRTC and numba-cuda: a missing one is a setup bug


def test_training_and_inference_kernels_compile_and_fit_sm90():
    report = ptx_check.run(workload="quick")
    s = report["summary"]
    names = {r["qualname"].split(".<locals>.")[-1] for r in report["kernels"]}
    # the quick workload reaches every training and decode path (not a vacuous pass)
    for k in ("_matmul_tiled", "_ln_backward_dx_cuda", "_attn_forward_tiled", "_dq_tiled", "_ce_rows",
              "_dropout_cuda", "_adamw_cuda", "_axpby", "_sumsq_partial", "_row_gate", "_transpose_cuda",
              "_attend_cuda", "_int4_rows_cuda", "_add_ln_rows_cuda", "_argmax_rows_cuda", "_gather_cuda"):
        assert k in names, k
    bad = [(r["qualname"], r["flags"], r.get("compile_error", "")[:300]) for r in report["kernels"] if r["flags"]]
    assert not bad, bad
    assert s["compiled"] == s["signatures"] >= 30
    for r in report["kernels"]:
        assert r["registers"] > 0 and r["max_threads"] >= 1
        if r["qualname"].endswith("_sumsq_partial"):
            assert r["f64_instructions"] > 0      # it sums in float64 on purpose (F64_BY_DESIGN), and the count sees it
        elif r["meant_float32"]:
            assert r["f64_instructions"] == 0, r["qualname"]


def _entry(name, argtypes, threads=128, dynshared=0, module="ptx_bad_kernels", factory=None):
    return {"module": module, "qualname": name, "factory": factory, "argtypes": argtypes, "max_threads": threads,
            "max_block": [threads, 1, 1], "max_dynshared": dynshared, "launches": 1, "fastmath_sim": False,
            "site": []}


def test_the_check_flags_each_fault(tmp_path):
    f32 = "array(float32, 1d, C)"
    attn3 = "array(float32, 3d, C)"
    rec = {"workload": "faults", "seconds": 0.0, "kernels": [
        _entry("float64_literal", [f32, f32]),
        _entry("clean", [f32, f32]),
        _entry("shape_not_constant", [f32]),
        _entry("big_shared", [f32], threads=128),
        _entry("big_shared", [f32], threads=256, dynshared=16384),
        # a real kernel (78 registers at last count) launched with 1024 threads: > 65,536 registers
        _entry("_kernels.<locals>._attn_backward_cuda", [attn3, attn3, attn3, attn3, "int64", "float32", attn3],
               threads=1024, module="scratchgpt.ops.attention_cuda",
               factory={"name": "_kernels", "args": [{"np_type": "float32"}]}),
        _entry("clean", [f32, f32], threads=2048),          # more threads than a block can have
    ]}
    (tmp_path / "rec.json").write_text(json.dumps(rec))
    env = ptx_check._env(sim=False)
    env["PYTHONPATH"] = os.path.dirname(__file__) + os.pathsep + env["PYTHONPATH"]
    subprocess.run([sys.executable, ptx_check.__file__, "--_compile", str(tmp_path / "rec.json"),
                    "--_out", str(tmp_path / "out.json")], env=env, check=True, cwd=ptx_check.ROOT,
                   capture_output=True)
    rows = json.loads((tmp_path / "out.json").read_text())["kernels"]
    got = {(r["qualname"].split(".")[-1], r["max_threads"]): r["flags"] for r in rows}
    assert got[("float64_literal", 128)] == ["f64"]
    assert got[("clean", 128)] == []
    assert got[("clean", 2048)] == ["block"]
    assert got[("shape_not_constant", 128)] == ["compile"]
    assert got[("big_shared", 128)] == []
    assert got[("big_shared", 256)] == ["shared"]
    assert got[("_attn_backward_cuda", 1024)] == ["registers"]
    assert "TypingError" in next(r for r in rows if r["qualname"] == "shape_not_constant")["compile_error"]
