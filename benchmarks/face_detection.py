"""Which face a photo's reading picks, false faces, small faces in large photos, and the time per frame.

    pip install -e ".[bench]" scikit-image
    python benchmarks/face_detection.py [--data ../shared/data]

Prints (models/face/MODEL_CARD.md, "Detection", keeps the numbers with this command):
1. false faces per textured 640×480 image without a face: 108 crops of 18 scikit-image photos and textures
   (brick, grass, gravel, coins, a cat, a clock, text, the Hubble deep field, ...), mirrored every other one,
   and 20 smooth random-blob images; with the faces="all" scan, for the shipped plausibility threshold and others;
   and a quarter of them upscaled to 2560×1920, read as the shipped encoder reads a large photo (faces="all");
2. the same threshold sweep on 300 FER2013 val faces pasted at 60-220 px into a textured 640×480 frame: the
   share still found (FER crops are blurred 48-px faces: the eye check finds few eyes in them, a harsh case);
3. scikit-image's astronaut (a smiling woman before a shuttle model) and cameraman: what the default reads;
4. a 4000×3000 photo with 20 copies of the astronaut's head, faces 5-20% of its height, on a textured
   background: how many faces="all" finds, and the time of the reading (median of 5); then one head at a time
   at 5-20% of the height on four backgrounds, four places each;
5. the time of one 640×480 frame with a face (p50 over 30 runs), plain and textured, as benchmarks/run.py builds it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from multimodal.face import DETECT_SIDE, FaceEncoder  # noqa: E402
from multimodal.face_detection import MIN_PLAUSIBILITY, HaarFaceDetector, rank_faces  # noqa: E402
from multimodal.image_io import downscale  # noqa: E402
from run import timeit, webcam_frame  # noqa: E402  (benchmarks/run.py, beside this file)

NON_FACE = ("brick", "grass", "gravel", "coffee", "chelsea", "clock", "coins", "horse", "hubble_deep_field",
            "immunohistochemistry", "moon", "page", "text", "rocket", "retina", "colorwheel", "logo", "checkerboard")
THRESHOLDS = (0.0, 0.2, 0.25, 0.3, MIN_PLAUSIBILITY, 0.4, 0.5)


def textured_frames() -> list[np.ndarray]:
    """640×480 RGB images without a face: crops of scikit-image's non-face photos and smooth random blobs."""
    import cv2
    import skimage.data

    rng = np.random.default_rng(0)
    frames = []
    for name in NON_FACE:
        image = np.asarray(getattr(skimage.data, name)())
        image = (image * 255).astype(np.uint8) if image.dtype == bool else image.astype(np.uint8)
        image = np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image[:, :, :3]
        h, w = image.shape[:2]
        for k in range(6):
            s = rng.uniform(0.5, 1.0)
            ch, cw = int(h * s), int(min(w, h * s * 4 / 3))
            y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            frame = cv2.resize(image[y:y + ch, x:x + cw], (640, 480), interpolation=cv2.INTER_CUBIC)
            frames.append(np.ascontiguousarray(frame[:, ::-1] if k % 2 else frame))
    for seed in range(20):
        noise = np.random.default_rng(seed).integers(0, 256, (480, 640)).astype(np.uint8)
        blobs = cv2.GaussianBlur(noise, (0, 0), (4, 8, 12, 20)[seed % 4])
        frames.append(cv2.cvtColor(cv2.normalize(blobs, None, 40, 200, cv2.NORM_MINMAX), cv2.COLOR_GRAY2RGB))
    return frames


def ranked_boxes(rgb: np.ndarray) -> list:
    """Every box the Haar scan finds in a ≤ 640-px image (the faces="all" scan), each with its plausibility."""
    import cv2

    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    copy, scale = downscale(grey, DETECT_SIDE)
    return rank_faces(grey, [f.scaled(1 / scale) for f in HaarFaceDetector().detect(copy, all_faces=True)], 0.0)


def textured_background(h: int, w: int, seed: int = 0) -> np.ndarray:
    import cv2

    noise = np.random.default_rng(seed).integers(0, 256, (h // 8, w // 8)).astype(np.uint8)
    blobs = cv2.normalize(cv2.GaussianBlur(noise, (0, 0), 2), None, 40, 200, cv2.NORM_MINMAX)
    return cv2.resize(blobs, (w, h), interpolation=cv2.INTER_LINEAR)


def pasted_faces(faces: np.ndarray) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
    """FER faces pasted at 60-220 px into the centre of a textured 640×480 frame; each frame and face centre."""
    import cv2

    background = textured_background(480, 640)
    frames, centres = [], []
    for i, face in enumerate(faces):
        side = (60, 100, 160, 220)[i % 4]
        frame = background.copy()
        y, x = 240 - side // 2, 320 - side // 2
        frame[y:y + side, x:x + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
        frames.append(cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB))
        centres.append((320, 240))
    return frames, centres


def big_photo() -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """A 4000×3000 RGB photo with 20 copies of the astronaut's head (a real face, every other one mirrored) whose
    faces are 150-600 px wide (5-20% of the photo's height), packed in rows on a textured background; the
    faces' (x, y, side)."""
    import cv2
    import skimage.data

    face_x, face_y, face_side = 174, 66, 98  # her face box, as the detector finds it
    margin = 0.2  # the head crop is the face box and a fifth of it on each side: 1.4 times the face
    pad = int(face_side * margin)
    head = skimage.data.astronaut()[face_y - pad:face_y + face_side + pad, face_x - pad:face_x + face_side + pad]
    photo = cv2.cvtColor(textured_background(3000, 4000, seed=1), cv2.COLOR_GRAY2RGB)
    spots, x, y, row_height = [], 0, 0, 0
    for i in range(19, -1, -1):  # largest first, left to right, a new row when one is full
        side = int(3000 * (0.05 + 0.15 * i / 19))
        crop_side = int(side * (1 + 2 * margin))
        if x + crop_side > 4000:
            x, y, row_height = 0, y + row_height, 0
        assert y + crop_side <= 3000, "the heads do not fit in the photo"
        crop = cv2.resize(head if i % 2 else head[:, ::-1], (crop_side, crop_side), interpolation=cv2.INTER_CUBIC)
        photo[y:y + crop_side, x:x + crop_side] = crop
        spots.append((x + int(side * margin), y + int(side * margin), side))
        x, row_height = x + crop_side, max(row_height, crop_side)
    return photo, spots


def one_head_photos(fraction: float) -> list[tuple[np.ndarray, tuple[int, int, int]]]:
    """4000×3000 photos with one astronaut head whose face is ``fraction`` of the height, at four places on each
    of four backgrounds (brick, gravel, flat grey, random blobs); each photo and its face's (x, y, side)."""
    import cv2
    import skimage.data

    backgrounds = [cv2.cvtColor(cv2.resize(f(), (4000, 3000)), cv2.COLOR_GRAY2RGB)
                   for f in (skimage.data.brick, skimage.data.gravel)]
    backgrounds += [np.full((3000, 4000, 3), 128, np.uint8),
                    cv2.cvtColor(textured_background(3000, 4000, seed=2), cv2.COLOR_GRAY2RGB)]
    face_x, face_y, face_side, pad = 174, 66, 98, 20
    head = skimage.data.astronaut()[face_y - pad:face_y + face_side + pad, face_x - pad:face_x + face_side + pad]
    side = int(3000 * fraction)
    crop_side = side * head.shape[0] // face_side
    crop = cv2.resize(head, (crop_side, crop_side), interpolation=cv2.INTER_AREA)
    photos = []
    for background in backgrounds:
        for k in range(4):
            x, y = 300 + 800 * k, 200 + 550 * k
            photo = background.copy()
            photo[y:y + crop_side, x:x + crop_side] = crop if k % 2 else crop[:, ::-1]
            photos.append((photo, (x + side * pad // face_side, y + side * pad // face_side, side)))
    return photos


def hits(boxes: list, spots: list[tuple[int, int, int]]) -> int:
    """How many of the pasted faces (x, y, side) have a box centred within a quarter of their side."""
    return sum(any(abs(b[0] + b[2] / 2 - (x + s / 2)) < s / 4 and abs(b[1] + b[3] / 2 - (y + s / 2)) < s / 4
                   for b in boxes) for x, y, s in spots)


def main() -> None:
    import cv2
    import skimage.data

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = ap.parse_args()
    encoder = FaceEncoder()
    encoder.load()
    frames = textured_frames()
    boxes = [ranked_boxes(f) for f in frames]
    print(f"1. false faces per textured 640×480 image without a face ({len(frames)} images, faces=\"all\" scan)")
    for t in THRESHOLDS:
        n = sum(b.plausibility >= t for bs in boxes for b in bs)
        mark = "  <- shipped" if t == MIN_PLAUSIBILITY else ""
        print(f"   plausibility >= {t:.2f}: {n / len(frames):.3f} ({n} boxes){mark}")
    fer = np.load(args.data / "face" / "fer2013_val.npz")["images"][:300]
    faces, _ = pasted_faces(fer)
    found = [[b for b in ranked_boxes(f) if abs(b.x + b.w / 2 - 320) < 30 and abs(b.y + b.h / 2 - 240) < 30]
             for f in faces]
    large = [cv2.resize(f, (2560, 1920), interpolation=cv2.INTER_CUBIC) for f in frames[::4]]
    n = sum(len(encoder.predict(f, faces="all").extras.get("faces", [])) for f in large)
    print(f"   the same photos, every 4th, at 2560×1920 (the fine scan of large photos): {n / len(large):.3f} "
          f"({n} boxes in {len(large)})")
    print(f"2. FER2013 val faces pasted into a textured frame ({len(faces)}): share found")
    for t in THRESHOLDS:
        print(f"   plausibility >= {t:.2f}: {np.mean([any(b.plausibility >= t for b in bs) for bs in found]):.3f}")
    print("3. what the default reads")
    for name in ("astronaut", "camera"):
        r = encoder.predict(np.asarray(getattr(skimage.data, name)()))
        print(f"   {name}: {r.status} {r.top_emotion} {r.confidence:.2f} box {r.extras.get('box')} "
              f"plausibility {r.extras.get('plausibility')} {r.message!r}")
    photo, spots = big_photo()
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        group = encoder.predict(photo, faces="all")
        times.append(time.perf_counter() - t0)
    got = [f["box"] for f in group.extras.get("faces", [])]
    print(f"4. 4000×3000 photo, 20 heads, faces 5-20% of the height: faces=\"all\" found {hits(got, spots)} of 20 "
          f"({len(got)} boxes), {1000 * float(np.median(times)):.0f} ms median of 5 (the default alone: "
          f"{encoder.predict(photo).status})")
    print("4b. one face in a 4000×3000 photo (brick, gravel, flat grey, random blobs; 4 places each): found, "
          "by the default (one face) and by faces=\"all\" (with any other box)")
    for fraction in (0.05, 0.075, 0.1, 0.15, 0.2):
        photos = one_head_photos(fraction)
        default = [encoder.predict(p) for p, _ in photos]
        found = sum(r.ok and hits([r.extras["box"]], [spot]) == 1 for r, (_, spot) in zip(default, photos))
        groups = [encoder.predict(p, faces="all").extras.get("faces", []) for p, _ in photos]
        every = sum(hits([f["box"] for f in g], [spot]) for g, (_, spot) in zip(groups, photos))
        extra = sum(len(g) for g in groups) - every
        print(f"   face {fraction:.0%} of the height: default {found}/{len(photos)}, faces=\"all\" {every}/{len(photos)}"
              f" and {extra} other boxes")
    for textured in (False, True):
        frame = webcam_frame(args.data, textured=textured)
        p50, p95 = timeit(lambda: encoder.predict(frame), 30)
        print(f"5. one 640×480 frame with a face, {'textured' if textured else 'plain'}: p50 {p50:.1f} ms, "
              f"p95 {p95:.1f} ms ({encoder.predict(frame).status})")


if __name__ == "__main__":
    main()
