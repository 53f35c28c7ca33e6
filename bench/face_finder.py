"""Face finders side by side: OpenCV Haar (the finder before) vs BlazeFace (dfd.faces, the finder now).

    python bench/face_finder.py [--data ../shared/data] [--n 0] [--no-accuracy] [--timing-only] [--repeat 15]

Both through ``dfd.detect.FaceFinder`` (``"haar"`` / ``"blazeface"``), in one process, on the same images:

1. time per image (median of --repeat calls, after warm-up, the two finders' calls interleaved so both see the
   same machine load) on a 512 x 768 stand-in for a full-body portrait
   (a shared face, 110 px, above a torso and background cut from the clothing strips of shared LFW photos),
   on a 768 x 1024 "group photo" (shared faces tiled at 256 down to 64 px) and on 256 px face crops; the ratio
   Haar / BlazeFace;
2. the group photo: which tiled faces each finds (a face counts when a box's centre falls in its tile; faces under
   ``dfd.detect.MIN_FACE_FRACTION`` of the shorter side are not looked for by either); then harder faces: 120
   shared real faces with the lower 40% covered, a dark band over the eyes, tilted 30 degrees, or small in a
   large picture, and in how many pictures each finder finds a face;
3. every shared dataset's test split (as ``dfd.data.index_dataset`` splits it, which is the default run's split):
   images with a face found and boxes found per finder; crop agreement, the IoU of the region each finder's
   largest face gives ``dfd.detect.face_crop`` (as served: the whole image when the crop would cover most of it),
   and of the two 1.8 x squares before that rule (strict); then (unless --no-accuracy) the default detector's
   accuracy at its own threshold judging the largest face's crop (the whole image where no face is found),
   per finder, with the whole image alone for reference (how its test metrics were made).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from dfd import detect, imaging  # noqa: E402

GROUP_SIZES = (256, 200, 160, 128, 112, 96, 80, 64)


def _faces(data: Path, n: int) -> list[np.ndarray]:
    paths = sorted((data / "faces-140k-mini" / "real-vs-fake" / "test" / "real").glob("*.jpg"))[:n]
    if len(paths) < n:
        sys.exit(f"need {n} faces under {data / 'faces-140k-mini'} (set --data)")
    return [imaging.load_image(p) for p in paths]


def _strips(data: Path, n: int, w: int, h: int, seed: int = 0) -> np.ndarray:
    """A w x h mosaic of the bottom strips (clothing, background) of n shared LFW photos."""
    paths = sorted((data / "lfw-faceswap" / "Dataset" / "Test" / "Real").glob("*.jpg"))
    rng = np.random.default_rng(seed)
    picks = [imaging.load_image(paths[i])[-60:] for i in rng.permutation(len(paths))[:n]]
    rows = [np.hstack([cv2.resize(picks[i], (w // 2, h // (n // 2))), cv2.resize(picks[i + 1], (w // 2, h // (n // 2)))])
            for i in range(0, n, 2)]
    return cv2.resize(np.vstack(rows), (w, h))


def portrait(data: Path) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """512 x 768 full-body stand-in: background and torso from clothing strips, a 110 px face as the head."""
    w, h, side = 512, 768, 110
    img = _strips(data, 12, w, h)
    torso = _strips(data, 4, 200, 560, seed=1)
    img[200:760, 156:356] = torso
    x, y = (w - side) // 2, 80
    img[y:y + side, x:x + side] = cv2.resize(_faces(data, 1)[0], (side, side), interpolation=cv2.INTER_AREA)
    return img, (x, y, side, side)


def group(data: Path) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """1024 x 768: shared faces tiled at GROUP_SIZES px on a smooth background with a little noise."""
    rng = np.random.default_rng(0)
    w, h = 1024, 768
    img = cv2.resize(rng.uniform(60, 200, (4, 5, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    img = np.clip(img + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)
    placed, x, y, row = [], 10, 10, 0
    for face, s in zip(_faces(data, len(GROUP_SIZES)), GROUP_SIZES, strict=True):
        if x + s > w - 10:
            x, y, row = 10, y + row + 10, 0
        img[y:y + s, x:x + s] = cv2.resize(face, (s, s), interpolation=cv2.INTER_AREA)
        placed.append((x, y, s, s))
        x, row = x + s + 15, max(row, s)
    return img, placed


def _masked(img: np.ndarray) -> np.ndarray:
    out = img.copy()
    out[int(0.6 * img.shape[0]):] = (70, 110, 160)
    return out


def _sunglasses(img: np.ndarray) -> np.ndarray:
    out = img.copy()
    h, w = img.shape[:2]
    out[int(0.38 * h):int(0.5 * h), int(0.2 * w):int(0.8 * w)] = 20
    return out


def _tilted(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    return cv2.warpAffine(img, cv2.getRotationMatrix2D((w / 2, h / 2), 30, 1.0), (w, h),
                          borderMode=cv2.BORDER_REFLECT)


def _small(img: np.ndarray) -> np.ndarray:
    out = np.full((768, 1024, 3), 120, np.uint8)
    out[300:450, 450:600] = cv2.resize(img, (150, 150), interpolation=cv2.INTER_AREA)
    return out


HARDER = {"lower 40% covered (a mask)": _masked, "a dark band over the eyes (sunglasses)": _sunglasses,
          "tilted 30 degrees": _tilted, "pasted at 150 px into 1024 x 768": _small}


def _median_ms(fns: dict, imgs: list[np.ndarray], repeat: int) -> dict[str, float]:
    """Median ms per image for each finder, calls interleaved (so both see the same machine load)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for img in imgs:
        for fn in fns.values():
            fn(img)  # warm-up
    for _ in range(repeat):
        for img in imgs:
            for name, fn in fns.items():
                t0 = time.perf_counter()
                fn(img)
                times[name].append(time.perf_counter() - t0)
    return {name: 1000 * statistics.median(t) for name, t in times.items()}


def _square(box, margin: float = detect.MARGIN) -> tuple[float, float, float, float]:
    x, y, w, h = box
    side = margin * max(w, h)
    return (x + w / 2 - side / 2, y + h / 2 - detect.LIFT * max(w, h) - side / 2, side, side)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--n", type=int, default=0, help="images per test split (0: all)")
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--no-accuracy", action="store_true")
    ap.add_argument("--timing-only", action="store_true", help="parts 1 and 2 only (no test splits)")
    args = ap.parse_args()
    data = Path(args.data)
    if not (data / "faces-140k-mini").is_dir():
        sys.exit(f"no shared data under {data} (set --data)")

    from dfd.export import tflite_runtime

    finders = {"haar": detect.FaceFinder("haar"), "blazeface": detect.FaceFinder("blazeface")}
    print(f"BlazeFace through {tflite_runtime()}; {os.cpu_count()} CPU cores")

    # 1. time per image
    portrait_img, head = portrait(data)
    group_img, placed = group(data)
    crops = _faces(data, 20)
    print(f"\n{'time per image, median ms':<44}{'Haar':>9}{'BlazeFace':>11}{'Haar/Blaze':>12}")
    for label, imgs in [("768 px full-body portrait (512 x 768)", [portrait_img]),
                        ("768 x 1024 group photo (8 faces)", [group_img]), ("256 px face crops (20)", crops)]:
        ms = _median_ms({name: f.find for name, f in finders.items()}, imgs, args.repeat if len(imgs) == 1 else 3)
        print(f"{label:<44}{ms['haar']:>9.1f}{ms['blazeface']:>11.1f}{ms['haar'] / ms['blazeface']:>11.1f}x")

    # 2. which faces each finds
    def hits(boxes, tiles):
        return [any(t[0] <= b[0] + b[2] / 2 <= t[0] + t[2] and t[1] <= b[1] + b[3] / 2 <= t[1] + t[3] for b in boxes)
                for t in tiles]

    print("\nfaces found (a box centred in the face's tile)")
    for name, f in finders.items():
        got = hits(f.find(group_img), placed)
        head_found = hits(f.find(portrait_img), [head])[0]
        print(f"  {name:<10} group photo: {sum(got)}/{len(placed)} "
              f"({', '.join(f'{s}px' for s, g in zip(GROUP_SIZES, got, strict=True) if g)}); "
              f"portrait: {'head found' if head_found else 'head missed'}, {len(f.find(portrait_img))} box(es)")
    print(f"  (faces under {detect.MIN_FACE_FRACTION} of the shorter side, about {GROUP_SIZES[-2]} px tiles and "
          "smaller here, are not looked for)")

    # 2b. harder faces: the same shared faces covered, tilted, small
    sources = (sorted((data / "faces-140k-mini" / "real-vs-fake" / "test" / "real").glob("*.jpg"))[:60]
               + sorted((data / "lfw-faceswap" / "Dataset" / "Test" / "Real").glob("*.jpg"))[:60])
    print(f"\nharder faces: {len(sources)} real test faces (60 faces-140k-mini, 60 lfw-faceswap), pictures with a "
          "face found")
    for label, change in HARDER.items():
        got = {name: 0 for name in finders}
        for path in sources:
            img = change(imaging.load_image(path))
            for name, f in finders.items():
                got[name] += bool(f.find(img))
        print(f"  {label:<42} Haar {got['haar']:>4}   BlazeFace {got['blazeface']:>4}")

    if args.timing_only:
        return 0

    # 3. the shared test splits
    from dfd.data import index_dataset

    test = index_dataset(data).split("test")
    if args.n:
        test = pd.concat([g.sample(min(len(g), args.n), random_state=0) for _, g in test.groupby("dataset")])
    det = None if args.no_accuracy else detect.Detector("default")
    cache: dict[tuple[str, tuple[int, ...]], float] = {}

    def p_fake(path: str, img: np.ndarray, region: tuple[int, int, int, int]) -> float:
        key = (path, tuple(region))
        if key not in cache:
            cache[key] = float(det.predict_arrays(imaging.prepare(detect.cut(img, region), det.image_size)[None])[0])
        return cache[key]

    header = (f"{'test split':<20}{'images':>7}{'found H':>9}{'found B':>9}{'boxes H':>9}{'boxes B':>9}"
              f"{'IoU served':>11}{'IoU strict':>11}")
    if det is not None:
        header += f"{'acc whole':>10}{'acc H':>8}{'acc B':>8}"
    print(f"\n{header}")
    totals: dict[str, list] = {"served": [], "strict": []}
    for dataset, rows in test.groupby("dataset"):
        found = {k: 0 for k in finders}
        boxes_n = {k: 0 for k in finders}
        served, strict, correct = [], [], {"whole": 0, "haar": 0, "blazeface": 0}
        for path, label in zip(rows["path"], rows["label"], strict=True):
            try:
                img = imaging.load_image(path)
            except imaging.ImageError:
                continue
            h, w = img.shape[:2]
            regions = {}
            first = {}
            for name, f in finders.items():
                boxes = f.find(img)
                found[name] += bool(boxes)
                boxes_n[name] += len(boxes)
                first[name] = boxes[0] if boxes else None
                regions[name] = detect.face_crop(boxes[0], img.shape) if boxes else (0, 0, w, h)
            if first["haar"] is not None and first["blazeface"] is not None:
                served.append(detect._iou(regions["haar"], regions["blazeface"]))
                strict.append(detect._iou(_square(first["haar"]), _square(first["blazeface"])))
            if det is not None:
                for name, region in [("whole", (0, 0, w, h)), ("haar", regions["haar"]),
                                     ("blazeface", regions["blazeface"])]:
                    correct[name] += int((p_fake(path, img, region) >= det.threshold) == bool(label))
        n = len(rows)
        totals["served"] += served
        totals["strict"] += strict
        line = (f"{dataset:<20}{n:>7}{found['haar']:>9}{found['blazeface']:>9}{boxes_n['haar']:>9}"
                f"{boxes_n['blazeface']:>9}{np.median(served) if served else float('nan'):>11.3f}"
                f"{np.median(strict) if strict else float('nan'):>11.3f}")
        if det is not None:
            line += f"{correct['whole'] / n:>10.3f}{correct['haar'] / n:>8.3f}{correct['blazeface'] / n:>8.3f}"
        print(line, flush=True)
    print(f"crop IoU over every split (faces both found: {len(totals['served'])}): served median "
          f"{np.median(totals['served']):.3f} (mean {np.mean(totals['served']):.3f}), strict median "
          f"{np.median(totals['strict']):.3f} (10th percentile {np.percentile(totals['strict'], 10):.3f})")
    if det is not None:
        print(f"accuracy: run {det.name} at its threshold {det.threshold:.3f}, served by {det.engine}; found H/B: "
              "images where Haar / BlazeFace found a face; the largest face's crop is judged")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
