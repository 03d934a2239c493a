"""Training checkpoints: everything needed to continue a run exactly, written atomically.

Layout of a run directory::

    RUN/checkpoints/step_0000100/   config.json model.safetensors   (GPT.load can read this)
                                    optimizer.safetensors           (optimizer arrays)
                                    trainer.json                    (step, schedule, RNG states,
                                                                     data position, loss scaler,
                                                                     early-stopping state, configs)
                                    manifest.json                   (sha256 of every file above)
    RUN/checkpoints/latest          one line of JSON: {"dir": "step_0000100", "step": 100}

Atomicity: a checkpoint is written into ``step_N.tmp-<pid>`` and renamed to ``step_N`` only
when complete (rename within one directory is atomic on POSIX); then ``latest`` is replaced by
``os.replace`` from a temp file. A SIGKILL at any instant therefore leaves ``latest`` pointing
at a complete checkpoint (or absent). We rejected overwriting a single ``checkpoint/`` directory
in place: a kill half-way would leave new weights with an old optimizer state.

Corruption: the manifest's sha256 sums are checked on load, so a truncated or bit-flipped file
is a ``CheckpointError`` naming the file, never silently wrong weights.

No pickle: arrays go to safetensors, everything else to JSON. The optimizer's state dict may
be nested (param groups, per-parameter moments); ``flatten_state`` stores each array under a
dotted key and leaves a ``{"__array__": key}`` placeholder in the JSON skeleton.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from ..errors import CheckpointError

LATEST = "latest"
_FILES_REQUIRED = ("config.json", "model.safetensors", "optimizer.safetensors", "trainer.json")


# ------------------------------------------------------------------ nested state <-> (json, arrays)
def flatten_state(state, prefix: str = "", arrays: dict | None = None):
    """Split a nested dict/list of NumPy arrays and JSON scalars into (skeleton, {key: array})."""
    if arrays is None:
        arrays = {}
    if isinstance(state, np.ndarray):
        key = prefix or "value"
        arrays[key] = np.ascontiguousarray(state)
        return {"__array__": key}, arrays
    if isinstance(state, np.generic):
        return state.item(), arrays
    if isinstance(state, dict):
        out = {}
        for k, v in state.items():
            if not isinstance(k, (str, int)):
                raise CheckpointError(f"state key {k!r} must be a str or int to be saved")
            sk = str(k)
            out[sk] = flatten_state(v, f"{prefix}.{sk}" if prefix else sk, arrays)[0]
        # JSON turns int keys into strings; remember which were ints so load restores them
        int_keys = [str(k) for k in state if isinstance(k, int)]
        if int_keys:
            out["__int_keys__"] = int_keys
        return out, arrays
    if isinstance(state, (list, tuple)):
        items = [flatten_state(v, f"{prefix}.{i}" if prefix else str(i), arrays)[0] for i, v in enumerate(state)]
        return ({"__tuple__": items} if isinstance(state, tuple) else items), arrays
    if state is None or isinstance(state, (bool, int, float, str)):
        return state, arrays
    raise CheckpointError(f"cannot save state value of type {type(state).__name__} at {prefix!r}")


def unflatten_state(skeleton, arrays: dict):
    if isinstance(skeleton, dict):
        if "__array__" in skeleton and len(skeleton) == 1:
            key = skeleton["__array__"]
            if key not in arrays:
                raise CheckpointError(f"optimizer state array {key!r} missing from optimizer.safetensors")
            return arrays[key]
        if "__tuple__" in skeleton and len(skeleton) == 1:
            return tuple(unflatten_state(v, arrays) for v in skeleton["__tuple__"])
        int_keys = set(skeleton.get("__int_keys__", ()))
        return {(int(k) if k in int_keys else k): unflatten_state(v, arrays)
                for k, v in skeleton.items() if k != "__int_keys__"}
    if isinstance(skeleton, list):
        return [unflatten_state(v, arrays) for v in skeleton]
    return skeleton


# ------------------------------------------------------------------ file helpers
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json_atomic(path, obj) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def save_arrays(path, arrays: dict) -> None:
    from safetensors.numpy import save_file

    from ..backend import to_host       # GPU arrays: one explicit copy each (numba's have no __array__)
    save_file({k: np.ascontiguousarray(to_host(v)) for k, v in arrays.items()}, str(path))


def save_arrays_atomic(path, arrays: dict) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    save_arrays(tmp, arrays)
    os.replace(tmp, path)


def save_model_state(directory, model) -> None:
    """config.json + model.safetensors holding *every* named parameter (PEFT ones included).

    For a plain GPT this is the same pair ``model.save`` writes; we write it ourselves so that a
    model wrapped with LoRA/Adapter/Prefix layers checkpoints the same way.
    """
    directory = Path(directory)
    cfg = getattr(model, "config", None)
    cfg_dict = cfg.to_dict() if hasattr(cfg, "to_dict") else {}
    with open(directory / "config.json", "w", encoding="utf-8") as f:
        json.dump(cfg_dict, f, indent=2)
    save_arrays(directory / "model.safetensors", {n: p.data for n, p in model.named_parameters()})


def load_arrays(path) -> dict:
    from safetensors.numpy import load_file
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for bad headers/truncation
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None


def read_json(path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None


# ------------------------------------------------------------------ save / load
def checkpoint_root(run_dir) -> Path:
    return Path(run_dir) / "checkpoints"


def save_checkpoint(run_dir, step: int, model, optimizer_state: dict, trainer_state: dict,
                    keep_last: int = 2) -> Path:
    """Write checkpoint ``step`` under ``run_dir`` atomically and point ``latest`` at it."""
    root = checkpoint_root(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:07d}"
    final = root / name
    tmp = root / f"{name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_model_state(tmp, model)
    skeleton, arrays = flatten_state(optimizer_state)
    save_arrays(tmp / "optimizer.safetensors", arrays)
    with open(tmp / "trainer.json", "w", encoding="utf-8") as f:
        json.dump({"step": step, "optimizer": skeleton, **trainer_state}, f)
    manifest = {}
    for p in sorted(tmp.iterdir()):
        if p.is_file():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())
            manifest[p.name] = _sha256(p)
    with open(tmp / "manifest.json", "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    if final.exists():  # a previous run wrote this step and we are redoing it: replace it whole
        shutil.rmtree(final)
    os.rename(tmp, final)
    _fsync_dir(root)
    write_json_atomic(root / LATEST, {"dir": name, "step": step})
    _prune(root, keep_last, keep=name)
    return final


def _prune(root: Path, keep_last: int, keep: str) -> None:
    steps = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_") and ".tmp-" not in p.name)
    for p in steps[:-keep_last] if keep_last > 0 else []:
        if p.name != keep:
            shutil.rmtree(p, ignore_errors=True)
    for p in root.iterdir():  # leftovers of a run killed mid-write
        if p.is_dir() and ".tmp-" in p.name and not p.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(p, ignore_errors=True)


def latest_checkpoint(run_dir) -> Path | None:
    """The directory ``latest`` points at, or None when the run has no checkpoint yet."""
    root = checkpoint_root(run_dir)
    ptr = root / LATEST
    if not ptr.exists():
        return None
    info = read_json(ptr)
    if not isinstance(info, dict) or "dir" not in info:
        raise CheckpointError(f"{ptr}: expected {{'dir': ..., 'step': ...}}, got {info!r}")
    path = root / info["dir"]
    if not path.is_dir():
        raise CheckpointError(f"{ptr} points at {path}, which does not exist")
    return path


def verify_checkpoint(path) -> None:
    """Raise CheckpointError unless every file listed in manifest.json is present and unchanged."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: checkpoint directory not found")
    for req in _FILES_REQUIRED:
        if not (path / req).is_file():
            raise CheckpointError(f"{path}: incomplete checkpoint, {req} is missing")
    manifest = read_json(path / "manifest.json")
    for fname, digest in manifest.items():
        f = path / fname
        if not f.is_file():
            raise CheckpointError(f"{path}: {fname} listed in manifest.json is missing")
        if _sha256(f) != digest:
            raise CheckpointError(f"{f}: checksum mismatch — the file is corrupt or was modified after saving")


def load_checkpoint(path) -> tuple[dict, dict, dict]:
    """Read a checkpoint written by ``save_checkpoint``.

    Returns (model_arrays, optimizer_state, trainer_state). The model arrays are keyed by
    parameter name; the caller checks they match its model (``check_model_arrays``).
    """
    path = Path(path)
    verify_checkpoint(path)
    model_arrays = load_arrays(path / "model.safetensors")
    trainer = read_json(path / "trainer.json")
    opt_arrays = load_arrays(path / "optimizer.safetensors")
    try:
        optimizer_state = unflatten_state(trainer.pop("optimizer"), opt_arrays)
    except KeyError:
        raise CheckpointError(f"{path / 'trainer.json'}: no optimizer state recorded") from None
    return model_arrays, optimizer_state, trainer


def check_model_arrays(model, arrays: dict, source) -> None:
    """Raise CheckpointError unless ``arrays`` has exactly the model's parameter names and shapes."""
    params = dict(model.named_parameters())
    missing = [n for n in params if n not in arrays]
    # tied weights (lm_head = wte) are stored once; extra keys that are not ours are an error
    extra = [n for n in arrays if n not in params]
    if missing or extra:
        raise CheckpointError(
            f"{source}: checkpoint does not match the model (missing {missing[:5]}, unexpected {extra[:5]})")
    for n, p in params.items():
        if tuple(arrays[n].shape) != tuple(p.data.shape):
            raise CheckpointError(
                f"{source}: parameter {n} has shape {tuple(arrays[n].shape)} in the checkpoint, "
                f"the model expects {tuple(p.data.shape)}")


def assign_model_arrays(model, arrays: dict) -> None:
    """Checkpoint arrays into the model's parameters, each on the device the parameter is on (a
    run resumed with --device cuda keeps training on the GPU, whichever device wrote the file)."""
    from ..backend import array_device, to_device
    for n, p in model.named_parameters():
        a = np.array(arrays[n], dtype=p.data.dtype, copy=True)
        p.data = to_device(a, "cuda") if array_device(p.data) == "cuda" else a
