"""Writes the small JPEG fixtures of the fast-path tests with libjpeg (Pillow).

They cover what the Rust encoder used in the tests cannot write: one
interleaved scan with optimised Huffman tables (libjpeg's `optimize`), in
4:4:4, 4:2:2, 4:2:0 and grayscale, with and without restart markers.

    python3 bench/python/make_jpeg_fixtures.py actors/tests/data/jpeg
"""

import math
import random
import sys
from pathlib import Path

from PIL import Image


def photo_like(rng, w, h, mode):
    img = Image.new("RGB", (w, h))
    fx, fy = rng.uniform(0.02, 0.3), rng.uniform(0.02, 0.3)
    base = [rng.uniform(40, 200) for _ in range(3)]
    px = []
    for y in range(h):
        for x in range(w):
            edge = 40 if (x // 13 + y // 7) % 5 == 0 else 0
            px.append(
                tuple(
                    max(0, min(255, int(b + 50 * math.sin(x * fx + c) * math.cos(y * fy) + edge + rng.uniform(-12, 12))))
                    for c, b in enumerate(base)
                )
            )
    img.putdata(px)
    return img.convert(mode)


def main(out_dir):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(2026)
    cases = [
        # name, size, mode, subsampling (0=4:4:4, 1=4:2:2, 2=4:2:0), quality, restart
        ("opt_444_q90", (131, 77), "RGB", 0, 90, {}),
        ("opt_422_q75", (150, 101), "RGB", 1, 75, {}),
        ("opt_420_q85", (173, 119), "RGB", 2, 85, {}),
        ("opt_420_q50_rst_rows", (120, 90), "RGB", 2, 50, {"restart_marker_rows": 1}),
        ("opt_444_q95_rst_blocks", (97, 65), "RGB", 0, 95, {"restart_marker_blocks": 3}),
        ("opt_gray_q80", (141, 93), "L", 0, 80, {}),
        ("opt_gray_q60_rst_blocks", (66, 130), "L", 0, 60, {"restart_marker_blocks": 5}),
        ("opt_420_q70_tiny", (9, 13), "RGB", 2, 70, {}),
    ]
    for name, (w, h), mode, sub, q, extra in cases:
        img = photo_like(rng, w, h, mode)
        kwargs = dict(quality=q, optimize=True, **extra)
        if mode == "RGB":
            kwargs["subsampling"] = sub
        img.save(out / f"{name}.jpg", "JPEG", **kwargs)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "actors/tests/data/jpeg")
