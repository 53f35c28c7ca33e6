"""The EfficientNet-Lite0 port: ImageNet weights read from the installed package without torch, and the Keras
model's logits on real faces equal to reference logits computed once with PyTorch 2.13.0
(``tools/lite0_reference.py``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA, need

from dfd import imaging, pretrained

FIXTURE = Path(__file__).parent / "fixtures" / "lite0_reference.npz"


def test_legacy_reader_gives_every_tensor_of_the_state_dict():
    state = pretrained.read_torch_legacy(pretrained.lite0_weights_path())
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert all(v.flags["C_CONTIGUOUS"] for v in state.values())
    # the stem kernel is stored channels-last on disk: a reader that ignored strides would scramble it
    mapped = pretrained.lite0_weights(state)
    assert mapped["stem_conv"][0].shape == (3, 3, 3, 32)
    assert np.array_equal(mapped["stem_conv"][0][:, :, 1, 5], state["_conv_stem.weight"][5, 1])


def test_reader_refuses_a_file_that_is_not_a_legacy_state_dict(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a pickle at all")
    with pytest.raises(pretrained.PretrainedError):
        pretrained.read_torch_legacy(bad)


def test_keras_port_matches_pytorch_reference_logits():
    from dfd import models

    ref = np.load(FIXTURE)
    need(SHARED_DATA)
    by_size: dict[int, object] = {}
    for rel, sha1, expected in zip(ref["paths"], ref["sha1"], ref["logits"], strict=True):
        rgb = imaging.load_image(need(SHARED_DATA / str(rel)))
        assert hashlib.sha1(rgb.tobytes()).hexdigest() == str(sha1), f"{rel} decodes to other pixels here"
        size = rgb.shape[0]
        if size not in by_size:
            by_size[size] = models.efficientnet_lite0(size, include_top=True, pretrained=True)
        got = np.asarray(by_size[size](rgb[None].astype(np.float32)))[0]
        assert np.abs(got - expected).max() <= 1e-3, rel
        assert got.argmax() == expected.argmax()
    assert len(ref["paths"]) == 8


def test_without_pretrained_weights_the_logits_differ():
    """The comparison above can fail: an untrained port gives other logits on the same face."""
    from dfd import models

    ref = np.load(FIXTURE)
    rgb = imaging.load_image(need(SHARED_DATA / str(ref["paths"][4])))
    model = models.efficientnet_lite0(rgb.shape[0], include_top=True, pretrained=False)
    got = np.asarray(model(rgb[None].astype(np.float32)))[0]
    assert np.abs(got - ref["logits"][4]).max() > 1e-1
