"""Architecture registry: every model builds, outputs P(fake) in [0, 1], saves and loads identically."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dfd import models


def test_registry_importable_without_tensorflow():
    code = ("import sys, dfd.models as m, dfd.runs, dfd.evaluate, dfd.train; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF imported'; "
            "print(sorted(m.ARCHITECTURES))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    for name in ("seed_2conv", "seed_4conv", "seed_224", "tiny", "srm_cnn"):
        assert name in out.stdout


@pytest.mark.parametrize("name", sorted(models.ARCHITECTURES))
def test_every_architecture_builds_small(name):
    kw = {"seed_224": {"filters": 8}, "lite0_hf": {"view": 48, "work_size": 24}}.get(name, {})
    model = models.build_model(name, 48, **kw)
    assert model.input_shape == (None, 48, 48, 3)
    assert model.output_shape == (None, 1)
    x = np.random.default_rng(0).uniform(0, 255, (3, 48, 48, 3)).astype(np.float32)
    y = np.asarray(model(x, training=False))
    assert y.shape == (3, 1)
    assert np.all((y >= 0) & (y <= 1))
    assert model.layers[-1].activation.__name__ == "sigmoid"
    # a spatial layer exists for Grad-CAM
    assert models.feature_layer(model)


def test_seed_architectures_match_their_recipes():
    m2 = models.build_model("seed_2conv")
    assert m2.input_shape == (None, 128, 128, 3)
    convs = [layer for layer in m2.layers if layer.__class__.__name__ == "Conv2D"]
    assert [c.filters for c in convs] == [32, 64]
    m4 = models.build_model("seed_4conv")
    assert [c.filters for c in m4.layers if c.__class__.__name__ == "Conv2D"] == [32, 64, 128, 128]
    m224 = models.build_model("seed_224")
    assert m224.input_shape == (None, 224, 224, 3)
    assert [c.filters for c in m224.layers if c.__class__.__name__ == "Conv2D"] == [224, 224, 224]
    for m in (m2, m4, m224):
        assert m.layers[1].__class__.__name__ == "Rescaling"


def test_rescaling_means_inputs_are_0_255():
    model = models.build_model("tiny", 32)
    assert abs(model.get_layer("rescale").scale - 1 / 255) < 1e-9


def test_pretrained_weights_refused_at_once():
    with pytest.raises(models.ArchitectureError, match="not downloaded"):
        models.build_model("efficientnet_b0", 64, weights="imagenet")
    with pytest.raises(models.ArchitectureError, match="not found"):
        models.build_model("mobilenet_v3_small", 64, weights="/nonexistent/w.h5")


def test_unknown_architecture_lists_choices():
    with pytest.raises(models.ArchitectureError, match="seed_2conv"):
        models.build_model("resnet9000")


def test_register_decorator_adds_an_architecture():
    @models.register("_test_arch", "test only", default_size=32)
    def _build(image_size):
        import keras

        inputs, x = models.rescaled_input(image_size)
        x = keras.layers.GlobalAveragePooling2D()(x)
        return models.finish(inputs, x, "_test_arch")

    try:
        assert models.ARCHITECTURES["_test_arch"] == "test only"
        assert models.build_model("_test_arch").output_shape == (None, 1)
    finally:
        for reg in (models.ARCHITECTURES, models.DEFAULT_SIZES, models._BUILDERS):
            reg.pop("_test_arch", None)


@pytest.mark.parametrize("name, kw", [("srm_cnn", {}), ("seed_2conv", {}),
                                      ("lowres_cnn", {"head": "flat", "thumb": 8, "work_size": 16}),
                                      ("lowres_cnn", {"head": "flat", "zoom": 20, "work_size": 10}),
                                      ("lowres_cnn", {"head": "flat", "work_size": 10, "energy_scales": [1, 2]}),
                                      ("lite0_hf", {"view": 40, "work_size": 20, "pretrained": True,
                                                    "train_blocks": 4})])
def test_save_load_safe_mode_same_predictions(tmp_path, name, kw):
    from dfd import runs

    model = models.build_model(name, 40, **kw)
    x = np.random.default_rng(1).uniform(0, 255, (4, 40, 40, 3)).astype(np.float32)
    before = np.asarray(model(x, training=False))
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    model.save(run_dir / "model.keras")
    runs.write_json_atomic(run_dir / "config.json", {"architecture": name, "image_size": 40})
    loaded = runs.load_model(run_dir)
    after = np.asarray(loaded(x, training=False))
    np.testing.assert_allclose(after, before, atol=1e-6)
    assert not np.allclose(before, before.mean())  # the check means something: outputs differ per image


def test_lowres_cnn_heads():
    plain = models.build_model("lowres_cnn", 64, work_size=32)
    flat = models.build_model("lowres_cnn", 64, work_size=32, head="flat")
    both = models.build_model("lowres_cnn", 64, work_size=32, head="flat", thumb=16)
    names = {layer.name for layer in both.layers}
    assert {"in_place", "thumb_mlp"} <= names and "in_place" not in {layer.name for layer in plain.layers}
    assert plain.count_params() < flat.count_params() < both.count_params()
    # Grad-CAM looks at the last conv stage, which feeds every head (not the thumbnail or the squeeze)
    for model in (plain, both):
        assert models.feature_layer(model) == "l4b_relu"
        assert [id(m) for m in models.pooled_maps(model)] == [id(model.get_layer("l4b_relu").output)]
    with pytest.raises(models.ArchitectureError, match="head"):
        models.build_model("lowres_cnn", 64, head="max")


def test_high_pass_removes_flat_regions_keeps_edges():
    import keras

    layer = models.custom_objects()["HighPass"]()
    flat = np.full((1, 16, 16, 3), 128.0, np.float32)
    edge = flat.copy()
    edge[:, :, 8:] = 200.0
    out_flat = keras.ops.convert_to_numpy(layer(flat))
    out_edge = keras.ops.convert_to_numpy(layer(edge))
    assert out_flat.shape == (1, 16, 16, 9)
    assert np.abs(out_flat[:, 3:-3, 3:-3]).max() < 1e-5
    assert np.abs(out_edge[:, 3:-3, 6:10]).max() > 0.5


def test_lowres_cnn_energy_scales_measure_the_next_octave_down():
    import keras
    from scipy import ndimage

    model = models.build_model("lowres_cnn", 64, work_size=16, head="flat", energy_scales=[1, 2])
    views = keras.Model(model.inputs, model.get_layer("views").output)
    x = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype(np.float32)
    out = np.asarray(views(x))
    assert out.shape == (1, 16, 16, 9)  # RGB, energy at full resolution, energy one octave down
    # the third view, by hand: 2x2 block mean, |Laplacian| (zero padding), 2x2 block mean, log(1 + .)
    half = x[0].reshape(32, 2, 32, 2, 3).mean(axis=(1, 3))
    lap = np.stack([ndimage.convolve(half[..., c], [[0, -1, 0], [-1, 4, -1], [0, -1, 0]], mode="constant")
                    for c in range(3)], axis=-1)
    want = np.log1p(np.abs(lap).reshape(16, 2, 16, 2, 3).mean(axis=(1, 3)))
    np.testing.assert_allclose(out[0, ..., 6:], want, rtol=1e-4, atol=1e-3)
    assert not np.allclose(out[0, ..., 3:6], want, atol=1e-2)  # and it is not the full-resolution band
    with pytest.raises(models.ArchitectureError, match="energy scale 3"):
        models.build_model("lowres_cnn", 64, work_size=16, energy_scales=[1, 3])


def test_lowres_cnn_zoom_tower_sees_only_the_centre():
    import keras

    model = models.build_model("lowres_cnn", 64, work_size=16, head="flat", zoom=32)
    plain = models.build_model("lowres_cnn", 64, work_size=16, head="flat")
    assert model.count_params() > plain.count_params()
    # Grad-CAM stays on the whole-image tower: the zoom tower's pooled maps lie over the centre only
    assert [id(m) for m in models.pooled_maps(model)] == [id(model.get_layer("l4b_relu").output)]
    zoom_feats = keras.Model(model.inputs, model.get_layer("zoom_gap").output)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    border = x.copy()
    border[:, :16] = rng.uniform(0, 255, border[:, :16].shape)  # rows outside the central 32 x 32
    border[:, :, 48:] = 0
    inner = x.copy()
    inner[:, 30:34, 30:34] = 255 - inner[:, 30:34, 30:34]
    base = np.asarray(zoom_feats(x, training=False))
    np.testing.assert_allclose(np.asarray(zoom_feats(border, training=False)), base, atol=1e-5)
    assert not np.allclose(np.asarray(zoom_feats(inner, training=False)), base, atol=1e-5)
    assert not np.allclose(np.asarray(model(border, training=False)), np.asarray(model(x, training=False)))


def test_lite0_hf_trunk_is_pretrained_with_frozen_batchnorm_and_early_blocks():
    import keras

    model = models.build_model("lite0_hf", 64, view=32, work_size=16, pretrained=True, train_blocks=6)
    trunk = model.get_layer(models.BACKBONE)
    reference = models.efficientnet_lite0(32, pretrained=True)
    np.testing.assert_array_equal(trunk.get_layer("block12_dwconv").get_weights()[0],
                                  reference.get_layer("block12_dwconv").get_weights()[0])
    assert all(not layer.trainable for layer in trunk.layers if isinstance(layer, keras.layers.BatchNormalization))
    assert not trunk.get_layer("stem_conv").trainable and not trunk.get_layer("block9_dwconv").trainable
    assert trunk.get_layer("block10_dwconv").trainable and trunk.get_layer("head_conv").trainable
    assert model.get_layer("l1_conv").trainable  # the high-frequency tower trains from scratch
    scratch = models.build_model("lite0_hf", 64, view=32, work_size=16)
    assert not np.array_equal(scratch.get_layer(models.BACKBONE).get_layer("block12_dwconv").get_weights()[0],
                              reference.get_layer("block12_dwconv").get_weights()[0])
    with pytest.raises(models.ArchitectureError, match="view"):
        models.build_model("lite0_hf", 64, view=48)


def test_int8_export_keeps_the_high_frequency_and_stem_layers_float():
    """Selective int8 (what export.export writes): the layers of export.INT8_KEEP_FLOAT stay float32 in the
    quantised file and the rest is int8; quantised whole, the high-frequency energy would be int8 too."""
    from dfd import export

    model = models.build_model("lite0_hf", 64, view=32, work_size=16)
    rng = np.random.default_rng(0)

    def representative():
        for _ in range(4):
            yield [rng.integers(0, 256, (1, 64, 64, 3)).astype(np.float32)]

    flat = export._converter(model).convert()
    selective, kept = export.quantize_int8(model, representative, flat)
    whole, none_kept = export.quantize_int8(model, representative, flat, keep=())
    assert kept == list(export.INT8_KEEP_FLOAT) and none_kept == []

    def dtypes(blob: bytes) -> dict[str, str]:
        details = export._interpreter(model_content=blob).get_tensor_details()
        return {t["name"]: np.dtype(t["dtype"]).name for t in details}

    selective, whole = dtypes(selective), dtypes(whole)
    energy = [n for n in selective if "hf_energy" in n and n.endswith("/Abs")]
    stem = [n for n in selective if "stem_" in n and "Relu6" in n]
    trunk = [n for n in selective if "block10_project" in n]
    assert energy and stem and trunk
    assert {selective[n] for n in energy + stem} == {"float32"} and {whole[n] for n in energy + stem} == {"int8"}
    assert "int8" in {selective[n] for n in trunk}
