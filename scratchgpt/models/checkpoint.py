"""Checkpoint files: safetensors for arrays, JSON for configs — never pickle.

A safetensors file is: 8 bytes little-endian u64 N, then N bytes of JSON header
{name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {...}},
then the raw little-endian data; offsets are relative to the end of the header.

We write with the ``safetensors`` package but read with our own small parser, because we want
every failure — a truncated download, a tensor of the wrong shape, a missing tensor — to say
WHICH tensor is wrong and what was expected versus found (the library reports only that the
file is invalid).
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np

from ..errors import CheckpointError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

# safetensors dtype code -> NumPy dtype (BF16 is special-cased: NumPy has no bfloat16)
_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
    "U64": np.uint64, "U32": np.uint32, "U16": np.uint16, "U8": np.uint8, "BOOL": np.bool_,
}
_MAX_HEADER = 100 * 1024 * 1024  # the format's own limit; a larger "length" means garbage


# ------------------------------------------------------------------------- writing
def save_safetensors(path, tensors: dict, metadata: dict | None = None) -> None:
    """Write name -> array. ``metadata`` {"format": "pt"} lets HF transformers read the file."""
    from safetensors.numpy import save_file

    arrays = {}
    for name, arr in tensors.items():
        arr = np.asarray(arr)
        if arr.dtype == object:
            raise CheckpointError(f"tensor {name!r}: cannot store dtype object")
        arrays[name] = np.ascontiguousarray(arr)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    # write then rename: an interrupted save never leaves a half-written checkpoint behind
    save_file(arrays, str(tmp), metadata={str(k): str(v) for k, v in (metadata or {}).items()})
    os.replace(tmp, path)


def save_json(path, obj: dict) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# ------------------------------------------------------------------------- reading
def read_safetensors_header(path) -> tuple[dict, int, int]:
    """Return (header without __metadata__, data start offset, data length); validate offsets."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {str(path)!r} does not exist")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path.name}: file is {size} bytes, too short to hold a safetensors header")
        (n,) = struct.unpack("<Q", head)
        if n > _MAX_HEADER or 8 + n > size:
            raise CheckpointError(f"{path.name}: header length {n} does not fit in a {size}-byte file "
                                  "(truncated or not a safetensors file)")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path.name}: header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path.name}: header must be a JSON object")
    header.pop("__metadata__", None)
    data_start = 8 + n
    data_len = size - data_start
    for name, info in header.items():
        try:
            dtype, shape, (begin, end) = info["dtype"], list(info["shape"]), info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{path.name}: tensor {name!r} has a malformed header entry {info!r}") from None
        if dtype not in _DTYPES and dtype != "BF16":
            raise CheckpointError(f"{path.name}: tensor {name!r} has unsupported dtype {dtype!r}")
        itemsize = 2 if dtype == "BF16" else np.dtype(_DTYPES[dtype]).itemsize
        need = int(np.prod(shape, dtype=np.int64)) * itemsize
        if end - begin != need or begin < 0:
            raise CheckpointError(f"{path.name}: tensor {name!r} with shape {tuple(shape)} and dtype {dtype} "
                                  f"needs {need} bytes but its offsets [{begin}, {end}) hold {end - begin}")
        if end > data_len:
            raise CheckpointError(f"{path.name}: tensor {name!r} is truncated: it needs bytes "
                                  f"[{begin}, {end}) of the data section but the file has only {data_len}")
    return header, data_start, data_len


def load_safetensors(path, names=None) -> dict[str, np.ndarray]:
    """Read tensors (all, or those in ``names``) as NumPy arrays. BF16 is widened to float32."""
    header, data_start, _ = read_safetensors_header(path)
    wanted = header.keys() if names is None else [n for n in names if n in header]
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    try:
        for name in wanted:
            info = header[name]
            begin, end = info["data_offsets"]
            raw = mm[data_start + begin: data_start + end]
            shape = tuple(info["shape"])
            if info["dtype"] == "BF16":
                # bfloat16 is the top half of a float32: shift it back into place
                bits = np.frombuffer(raw.tobytes(), dtype="<u2").astype(np.uint32) << 16
                arr = bits.view(np.float32).reshape(shape)
            else:
                dt = np.dtype(_DTYPES[info["dtype"]]).newbyteorder("<")
                arr = np.frombuffer(raw.tobytes(), dtype=dt).reshape(shape).astype(dt.newbyteorder("="))
            out[name] = arr
    finally:
        del mm
    return out


def load_json(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {str(path)!r} does not exist")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path.name}: not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path.name}: expected a JSON object")
    return obj


def check_tensors(found: dict, expected: dict, where: str = WEIGHTS_NAME, allow_extra=()) -> None:
    """Raise CheckpointError unless ``found`` has every name of ``expected`` with its shape.

    ``expected`` maps name -> shape. ``allow_extra`` lists names (or suffixes) that may be
    present without being expected; anything else unexpected is an error too.
    """
    for name, shape in expected.items():
        if name not in found:
            raise CheckpointError(f"{where}: missing tensor {name!r} (expected shape {tuple(shape)})")
        got = tuple(np.shape(found[name]))
        if got != tuple(shape):
            raise CheckpointError(f"{where}: tensor {name!r} has shape {got}, expected {tuple(shape)}")
    for name in found:
        if name not in expected and not any(name == a or name.endswith(a) for a in allow_extra):
            raise CheckpointError(f"{where}: unexpected tensor {name!r} (not a parameter of this model)")


def save_model(model, directory, config_json: dict) -> Path:
    """Write ``config.json`` and ``model.safetensors`` (every named parameter once) into a dir."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {name: p.data for name, p in model.named_parameters()}
    save_safetensors(directory / WEIGHTS_NAME, tensors, metadata={"format": "pt"})
    save_json(directory / CONFIG_NAME, config_json)
    return directory


def load_weights_into(model, directory, rename=None, allow_extra=()) -> None:
    """Load ``directory/model.safetensors`` into ``model`` after checking names and shapes.

    ``rename`` maps a file name to our parameter name (or None to skip that tensor).
    """
    path = Path(directory) / WEIGHTS_NAME
    tensors = load_safetensors(path)
    if rename is not None:
        renamed = {}
        for k, v in tensors.items():
            nk = rename(k)
            if nk is not None:
                renamed[nk] = v
        tensors = renamed
    params = dict(model.named_parameters())
    check_tensors(tensors, {k: p.data.shape for k, p in params.items()}, where=path.name,
                  allow_extra=allow_extra)
    for name, p in params.items():
        arr = tensors[name]
        if not np.issubdtype(arr.dtype, np.floating):
            raise CheckpointError(f"{path.name}: tensor {name!r} has dtype {arr.dtype}, expected a float type")
        p.data[...] = arr
