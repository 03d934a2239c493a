"""Build script for scratchgpt.

Every ``*.pyx`` file under ``scratchgpt/`` becomes a C extension of the same dotted name,
so adding a Cython module never needs an edit here.
"""
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup

HERE = Path(__file__).parent


def cython_extensions():
    exts = []
    for pyx in sorted((HERE / "scratchgpt").rglob("*.pyx")):
        rel = pyx.relative_to(HERE).with_suffix("")
        exts.append(
            Extension(
                ".".join(rel.parts),
                [str(pyx.relative_to(HERE))],
                include_dirs=[np.get_include()],
                extra_compile_args=["-O3"],
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            )
        )
    return cythonize(
        exts,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    )


# References the tests and benchmarks compare against; never needed to use scratchgpt.
TEST_REFS = ["torch==2.13.0", "transformers", "tokenizers"]
# The `serve` extra: scratchgpt serve (FastAPI app on uvicorn, Prometheus /metrics).
SERVE = ["fastapi>=0.110", "uvicorn>=0.29", "prometheus-client>=0.20"]
# The CUDA path (scratchgpt/ops/*_cuda.py). numba-cuda 0.30.x: the last line that still has the
# simulator (NUMBA_ENABLE_CUDASIM=1, what CI runs the CUDA tests on; it needs no toolkit) and
# works with NumPy 2.4. The `gpu` extra adds the CUDA 12 toolkit wheels a real NVIDIA GPU needs.
# greenlet: the simulator's thread blocks run as greenlets (scratchgpt/cuda_simulator.py; ~2x faster
# than its pooled-thread fallback, ~20x faster than numba's own thread per CUDA thread)
CUDA_SIM = ["numba-cuda>=0.30,<0.31", "greenlet>=3"]
GPU = ["numba-cuda[cu12]>=0.30,<0.31"]
# The `dist` extra: MPI for multi-process runs (mpiexec -n N scratchgpt pretrain --dist dp ...); the mpich
# wheel brings the MPI library and its mpiexec, so nothing has to come from the system's packages
DIST = ["mpi4py>=3.1", "mpich"]
# NVRTC for tests/test_ptx_check.py: numba-cuda asks it which GPUs it can compile for before it
# compiles our kernels to PTX for sm_90 (no GPU needed; NVVM and ptxas come from the machine's
# CUDA 13 toolkit, /usr/local/cuda-13.0 on CI). The wheel holds only the library.
PTX_CHECK = ["nvidia-cuda-nvrtc>=13,<14"]
# Everything the test suite needs (the README's test command installs it): runners + references;
# the server tests drive a live server with the official openai client and the chat page with
# Playwright (Debian's chromium, installed by .ci/run; Playwright's own browser download is not used)
TEST = (["pytest>=7", "hypothesis>=6", "pytest-xdist>=3"] + TEST_REFS + SERVE + CUDA_SIM + PTX_CHECK + DIST
        + ["openai>=1.30", "httpx", "playwright"])

setup(
    name="scratchgpt",
    version="0.1.0",
    description="A ChatGPT-like system built from scratch: NumPy autograd, Numba kernels, Cython tokenizer",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["scratchgpt", "scratchgpt.*"]),
    # data ships in the package (scratchgpt/datasets/), so an installed wheel runs the demo anywhere
    package_data={"scratchgpt": ["**/*.pyx", "**/*.json", "**/*.html", "**/*.yml", "**/*.txt", "**/*.csv",
                                 "**/*.md"]},
    ext_modules=cython_extensions(),
    install_requires=[
        "numpy>=1.24",
        "numba>=0.59",
        "cython>=3",
        "setuptools>=70",
        "sentencepiece>=0.2",
        "safetensors>=0.4",
        "tqdm>=4.66",  # 4.66: TQDM_* environment defaults (commands/_flags.py sets TQDM_DELAY)
        "pyyaml>=6",
        "chatterbot-corpus>=1.2",
    ],
    extras_require={
        "test": TEST,
        "dev": TEST,  # older name of "test", kept so existing instructions still work
        "bench": TEST_REFS + ["tiktoken"],
        "serve": SERVE,
        "gpu": GPU,
        "dist": DIST,
    },
    entry_points={"console_scripts": ["scratchgpt=scratchgpt.cli:main"]},
    zip_safe=False,
)
