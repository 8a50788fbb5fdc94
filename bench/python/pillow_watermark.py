"""Pillow baseline of the watermark fast-path bench: the reference design
(`Image.open -> paste(mark, pos, mark) -> save(quality=85)`) on the same
photos and mark, CPU time per image on the calling core.

    python3 bench/python/pillow_watermark.py tests/data [margin]
"""

import io
import sys
import time
from pathlib import Path

from PIL import Image


def main(data, margin):
    mark = Image.open(data / "watermark_500x100.png").convert("RGBA")
    mark.load()
    for path in sorted(data.glob("*_1980x1280.jpg")):
        raw = path.read_bytes()

        def once():
            img = Image.open(io.BytesIO(raw))
            img.paste(mark, (img.width - mark.width - margin, img.height - mark.height - margin), mark)
            out = io.BytesIO()
            img.save(out, "JPEG", quality=85)
            return out

        for _ in range(3):
            once()
        n, start = 0, time.process_time()
        while time.process_time() - start < 3.0:
            once()
            n += 1
        ms = (time.process_time() - start) / n * 1000
        print(f"pillow/{path.stem:<22} {ms:7.2f} ms CPU per image ({n} runs, Pillow {Image.__version__})")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 20)
