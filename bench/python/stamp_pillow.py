#!/usr/bin/env python3
"""The reference stamp in Pillow, timed in-process on the same photos:
Image.open -> paste(mark, pos, mark) -> save(quality=85).

Usage: python3 bench/python/stamp_pillow.py [--seconds 10] [--json]
Pin it to one core with `taskset -c 1` to compare per core.
"""
import argparse
import io
import json
import os
import time

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "tests", "data")
PHOTOS = ["pier", "boats", "leaves"]
MARGIN = 20


def stamp(jpeg: bytes, mark: Image.Image) -> bytes:
    img = Image.open(io.BytesIO(jpeg))
    pos = (img.width - mark.width - MARGIN, img.height - mark.height - MARGIN)
    img.paste(mark, pos, mark)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0, help="time per photo")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    mark = Image.open(os.path.join(DATA, "watermark_500x100.png")).convert("RGBA")
    mark.load()
    results = []
    for name in PHOTOS:
        with open(os.path.join(DATA, f"{name}_1980x1280.jpg"), "rb") as f:
            jpeg = f.read()
        for _ in range(3):  # warm up
            stamp(jpeg, mark)
        n, cpu0, t0 = 0, time.process_time(), time.perf_counter()
        while time.perf_counter() - t0 < args.seconds:
            stamp(jpeg, mark)
            n += 1
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        results.append({"photo": name, "images": n, "ms_per_image": 1000 * wall / n,
                        "cpu_ms_per_image": 1000 * cpu / n, "images_per_s": n / wall})
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print(f"pillow stamp/{r['photo']:7} {r['ms_per_image']:7.2f} ms/image "
                  f"(cpu {r['cpu_ms_per_image']:.2f} ms)  {r['images_per_s']:7.1f} images/s")


if __name__ == "__main__":
    main()
