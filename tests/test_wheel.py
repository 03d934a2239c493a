"""A built wheel works outside the source tree: build it from this checkout's files, install it
into a fresh virtual environment and run `scratchgpt demo --quick` from an empty directory.

No network: the wheel is built without build isolation (setuptools, Cython and NumPy are already
installed) and installed with --no-deps --no-index; the venv sees the already-installed runtime
dependencies through --system-site-packages. The venv's own copy must be the one imported,
never this checkout or an editable install of it.
"""
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD_INPUTS = ("setup.py", "pyproject.toml", "README.md")


def source_files() -> list[str]:
    """The files a clean clone would have (tracked + new, not ignored): no built extensions."""
    try:
        out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                             check=True, timeout=60).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("needs git to list the checkout's files")
    return [f for f in out.split("\0") if f and (f in BUILD_INPUTS or f.startswith("scratchgpt/"))
            and (ROOT / f).is_file()]


@pytest.mark.slow
def test_wheel_runs_the_demo_from_an_empty_directory(tmp_path):
    src = tmp_path / "src"
    for f in source_files():
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, src / f)
    assert not list(src.rglob("*.so")), "the copy must be unbuilt"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "SCRATCHGPT_DEBUG")}
    env.update(NUMBA_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", PIP_NO_INPUT="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                            "--no-index", "-w", str(wheels), "-q"], cwd=tmp_path, capture_output=True, text=True,
                           env=env, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = wheels.glob("scratchgpt-*.whl")
    with zipfile.ZipFile(wheel) as z:                 # the evaluation sets ship with the package
        names = set(z.namelist())
    for f in ("train.csv", "test.csv", "paraphrase.csv", "dev.csv", "paraphrase_blind.csv", "values_dev.csv"):
        assert f"scratchgpt/datasets/customer_service/{f}" in names, f

    venv.EnvBuilder(system_site_packages=True, with_pip=False, symlinks=True).create(tmp_path / "venv")
    py = tmp_path / "venv" / "bin" / "python"
    # the venv's python runs the system pip (visible through --system-site-packages) and so
    # installs into the venv
    inst = subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert inst.returncode == 0, inst.stderr[-3000:]

    empty = tmp_path / "empty"
    empty.mkdir()
    where = subprocess.run([str(py), "-c", "import scratchgpt, scratchgpt.datasets as d; "
                            "print(scratchgpt.__file__); print(d.customer_service_file('train'))"],
                           cwd=empty, capture_output=True, text=True, env=env, timeout=120)
    assert where.returncode == 0, where.stderr[-2000:]
    for line in where.stdout.split():
        assert str(tmp_path / "venv") in line, f"imported from outside the venv: {line}"

    demo = subprocess.run([str(tmp_path / "venv" / "bin" / "scratchgpt"), "demo", "--quick", "--no-progress"],
                          cwd=empty, capture_output=True, text=True, env=env, timeout=300)
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-3000:]
    assert (empty / "runs" / "demo" / "eval.json").is_file()
    assert "untrained on purpose" in demo.stdout
    version = subprocess.run([str(py), "-m", "scratchgpt", "--version"], cwd=empty, capture_output=True, text=True,
                             env=env, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("scratchgpt ")
