"""Reading and writing .safetensors files with numpy.

The format: an 8-byte little-endian header length, a JSON header
({name: {dtype, shape, data_offsets}}, optional "__metadata__" of strings),
then raw little-endian data. BF16 tensors are widened to float32 on read.
"""
import json
import struct

import numpy as np

_DTYPES = {
    np.dtype("float64"): "F64", np.dtype("float32"): "F32",
    np.dtype("float16"): "F16", np.dtype("int64"): "I64",
    np.dtype("int32"): "I32", np.dtype("int16"): "I16",
    np.dtype("int8"): "I8", np.dtype("uint8"): "U8", np.dtype("bool"): "BOOL",
}
_NUMPY = {v: k for k, v in _DTYPES.items()}


def write(path, tensors, metadata=None):
    """Writes {name: np.ndarray} in the given order, and string metadata."""
    header, blobs, offset = {}, [], 0
    for name, value in tensors.items():
        # ascontiguousarray makes 0-d arrays 1-d: keep the shape.
        array = np.ascontiguousarray(value).reshape(np.shape(value))
        if array.dtype not in _DTYPES:
            raise ValueError(f"{name}: unsupported dtype {array.dtype}")
        blob = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _DTYPES[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def read(path, names=None):
    """Returns ({name: np.ndarray}, metadata); only `names` if given."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: truncated safetensors file")
    (length,) = struct.unpack("<Q", data[:8])
    if 8 + length > len(data):
        raise ValueError(f"{path}: header length {length} past the end of the file")
    header = json.loads(data[8:8 + length])
    metadata = header.pop("__metadata__", {})
    base = 8 + length
    tensors = {}
    for name, info in header.items():
        if names is not None and name not in names:
            continue
        begin, end = info["data_offsets"]
        raw = data[base + begin:base + end]
        if info["dtype"] == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            array = bits.view(np.float32)
        else:
            array = np.frombuffer(raw, dtype=_NUMPY[info["dtype"]].newbyteorder("<"))
        tensors[name] = array.reshape(info["shape"])
    return tensors, metadata
