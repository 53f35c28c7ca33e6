"""Export a run's Keras model to TensorFlow Lite: float32, and int8 (post-training integer quantisation).

``export(run, out_dir)`` writes ``model_float32.tflite`` and ``model_int8.tflite`` (plus ``export.json``
recording sizes and the representative images used) and returns their paths. Both files keep the model's
interface: a float32 (1, size, size, 3) input with values 0..255 and a float32 (1, 1) P(fake) output; the
int8 file quantises the weights and activations inside (its input and output are (de)quantised in the
graph), calibrated on up to ``n_representative`` training images of the run's own data, decoded by
:mod:`dfd.imaging` exactly as in training and serving, except the layers of :data:`INT8_KEEP_FLOAT`
(selective quantisation). :func:`tflite_predictor` runs an exported file.

TensorFlow is imported only inside the functions.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from dfd import imaging
from dfd.models import mirror_averaged
from dfd.runs import (
    EXPORTS_DIR,
    Run,
    check_writable,
    get_run,
    load_model,
    unique_name,
    user_dir,
    write_json_atomic,
)


class ExportError(ValueError):
    """A run that cannot be exported (no model, no representative images), with a one-line reason."""


def representative_paths(run: Run, data_root: str | Path | None = None, n: int = 200, seed: int = 0) -> list[str]:
    """Up to ``n`` training image paths of the run's data (both classes, every dataset), shuffled by ``seed``."""
    from dfd.data import DatasetError, index_dataset

    root = data_root or run.config.get("data")
    if not root:
        raise ExportError(f"run {run.name!r} records no data folder; pass data_root for the int8 calibration images")
    try:
        index = index_dataset(root, val_frac=run.config.get("val_frac", 0.15),
                              test_frac=run.config.get("test_frac", 0.15), seed=run.split_seed)
    except DatasetError as exc:
        raise ExportError(f"cannot read the representative images: {exc}") from exc
    train = index.split("train")
    if train.empty:
        train = index.frame
    take = min(n, len(train))
    return train.sample(n=take, random_state=seed)["path"].astype(str).tolist()


def _representative(paths: list[str], size: int) -> Callable[[], Iterator[list[np.ndarray]]]:
    def gen() -> Iterator[list[np.ndarray]]:
        for p in paths:
            try:
                yield [imaging.decode(p, size)[None]]
            except imaging.ImageError:
                continue

    return gen


# Layers the int8 export keeps in float32 (substrings of Keras layer names, matched in the converted graph's
# tensor names), chosen with TFLite's quantisation debugger on the default detector, where they had the largest
# error per quantisation step:
# - "hf_energy", "down2": the high-frequency energy of the 0..255 pixels (lite0_hf, lowres_cnn). A Laplacian
#   spans about +-1,000, so one int8 step is about 4-8 grey levels, while the information sits in the small
#   values that log(1 + x) spreads out;
# - "stem_", "block0_dw": the first two convolutions of the EfficientNet-Lite0 trunk (ReLU6, about 3 steps
#   of error each).
# The rest (over 95% of the weights) stays int8. Architectures without these layers are quantised whole.
INT8_KEEP_FLOAT = ("hf_energy", "down2", "stem_", "block0_dw")


def tflite_runtime() -> str:
    """Which runtime :func:`tflite_interpreter` uses: "litert" (the ``ai-edge-litert`` package, where it is
    installed: requirements.txt installs it where it has wheels) or "tf.lite" (TensorFlow's own, deprecated in
    its favour)."""
    try:
        from ai_edge_litert.interpreter import Interpreter  # noqa: F401
    except ImportError:
        return "tf.lite"
    return "litert"


def tflite_interpreter(**kwargs: Any) -> Any:
    """A TFLite interpreter (``model_path=`` or ``model_content=``, ``num_threads=``): LiteRT's when
    ``ai-edge-litert`` is installed (it is what TensorFlow's deprecation warning points to; the default's
    P(fake) through it equals tf.lite's within 1e-5, tests/test_faces.py), else ``tf.lite.Interpreter``,
    without that warning."""
    if tflite_runtime() == "litert":
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter(**kwargs)
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tf.lite.Interpreter(**kwargs)


_interpreter = tflite_interpreter


def quantize_int8(model: Any, representative: Callable[[], Iterator[list[np.ndarray]]], flat_model: bytes,
                  keep: tuple[str, ...] = INT8_KEEP_FLOAT) -> tuple[bytes, list[str]]:
    """int8 post-training quantisation of ``model`` (``flat_model``: its float32 conversion, read for tensor
    names). Layers named by ``keep`` stay float32 through TFLite's selective quantisation (the quantisation
    debugger's ``denylisted_nodes``). Returns the file's bytes and the entries of ``keep`` the model has."""
    import tensorflow as tf

    names = sorted({t["name"] for t in _interpreter(model_content=flat_model).get_tensor_details()
                    if any(k in t["name"] for k in keep)})
    conv = _converter(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    if not names:
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        return conv.convert(), []
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=names)
    debugger = tf.lite.experimental.QuantizationDebugger(converter=conv, debug_dataset=representative,
                                                         debug_options=options)
    return debugger.get_nondebug_quantized_model(), [k for k in keep if any(k in n for n in names)]


def _converter(model: Any) -> Any:
    # from_keras_model freezes the variables (a tf.function's concrete function keeps them as resources,
    # which the TFLite interpreter reads as uninitialised: NaN outputs, failed int8 calibration).
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_keras_model(model)


def export(run: Run | str | Path, out_dir: str | Path | None = None, *, data_root: str | Path | None = None,
           kinds: tuple[str, ...] = ("float", "int8"), n_representative: int = 200,
           seed: int = 0) -> dict[str, Path]:
    """Write ``model_float32.tflite`` and/or ``model_int8.tflite`` (``kinds``) and ``export.json`` to ``out_dir``.

    ``out_dir`` defaults to a new folder ``<user runs>/_exports/<run>`` (never the run folder: a shipped run
    is read-only, see :mod:`dfd.runs`). Returns {"float32": path, "int8": path, "info": path}.
    """
    unknown = set(kinds) - {"float", "int8"}
    if unknown or not kinds:
        raise ExportError(f"unknown export kind(s) {sorted(unknown)}; choose from float, int8")
    import tensorflow as tf

    run = get_run(run)
    if not run.model_path.exists():
        raise ExportError(f"run {run.name!r} has no model.keras to export")
    if out_dir:
        out = check_writable(Path(out_dir))
    else:
        exports = user_dir() / EXPORTS_DIR
        out = exports / unique_name(exports, run.name, run=False)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(run)
    if run.tta:
        model = mirror_averaged(model)
    size = int(model.inputs[0].shape[1])
    info: dict[str, Any] = {"run": run.name, "image_size": size, "keras_bytes": run.model_path.stat().st_size,
                            "keras_sha256": file_sha256(run.model_path), "tta": run.tta,
                            "tensorflow": tf.__version__}
    written: dict[str, Path] = {}

    start = time.perf_counter()
    flat = _converter(model).convert()
    if "float" in kinds:
        written["float32"] = out / "model_float32.tflite"
        written["float32"].write_bytes(flat)
        info["float32"] = {"bytes": len(flat), "seconds": round(time.perf_counter() - start, 1)}

    if "int8" in kinds:
        paths = representative_paths(run, data_root, n_representative, seed)
        if not paths:
            raise ExportError("no representative images found for the int8 calibration")
        start = time.perf_counter()
        quant, kept_float = quantize_int8(model, _representative(paths, size), flat)
        written["int8"] = out / "model_int8.tflite"
        written["int8"].write_bytes(quant)
        info["int8"] = {"bytes": len(quant), "seconds": round(time.perf_counter() - start, 1),
                        "representative_images": len(paths), "float_layers": kept_float}
    written["info"] = write_json_atomic(out / "export.json", info)
    return written


export_tflite = export  # the name the CLI looks for


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tflite_predictor(path: str | Path, threads: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """``predict(batch float32 (n, size, size, 3) 0..255) -> (n,) P(fake)`` running a ``.tflite`` file on
    ``threads`` threads (default: every core this process may use; TFLite's own default is one, which is about
    half the speed on this project's 2-core machine). Safe to call from several threads (one interpreter, calls
    take turns)."""

    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

    interpreter = _interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    lock = threading.Lock()

    def predict(batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch, np.float32)
        if batch.ndim == 3:
            batch = batch[None]
        probs = np.empty(len(batch), np.float64)
        with lock:
            for i, img in enumerate(batch):
                interpreter.set_tensor(inp["index"], img[None])
                interpreter.invoke()
                probs[i] = float(np.asarray(interpreter.get_tensor(out["index"])).reshape(-1)[0])
        return probs

    return predict


def serving_predictor(run: Run) -> Callable[[np.ndarray], np.ndarray] | None:
    """A predictor running the run's own float32 export if it was made from this very ``model.keras`` (same
    SHA-256, same test-time mirroring and input size), else None."""
    flat, info_path = run.path / "model_float32.tflite", run.path / "export.json"
    if not (flat.is_file() and info_path.is_file() and run.model_path.is_file()):
        return None
    try:
        info = json.loads(info_path.read_text())
    except (OSError, ValueError):
        return None
    if (info.get("keras_sha256") != file_sha256(run.model_path) or bool(info.get("tta")) != bool(run.tta)
            or int(info.get("image_size") or 0) != int(run.config.get("image_size") or 0)):
        return None
    return tflite_predictor(flat)


def main(argv: list[str] | None = None) -> int:
    """``python -m dfd.export RUN [--out DIR] [--data DIR] [--no-int8]`` (the CLI's ``export`` calls :func:`export`)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m dfd.export", description=main.__doc__)
    ap.add_argument("run", nargs="?", default="default")
    ap.add_argument("--out", default=None, help="output folder (default: a new folder <user runs>/_exports/<run>)")
    ap.add_argument("--data", default=None, help="data folder for int8 calibration images (default: the run's)")
    ap.add_argument("--n-representative", type=int, default=200)
    ap.add_argument("--no-int8", action="store_true")
    args = ap.parse_args(argv)
    try:
        paths = export(args.run, args.out, data_root=args.data, n_representative=args.n_representative,
                       kinds=("float",) if args.no_int8 else ("float", "int8"))
    except (ExportError, ValueError, OSError) as exc:
        print(f"error: {exc}")
        return 2
    print(json.dumps({k: str(v) for k, v in paths.items()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
