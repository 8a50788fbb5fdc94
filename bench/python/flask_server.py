#!/usr/bin/env python3
"""A minimal Flask + Pillow watermark server, the HTTP baseline for
`tasklet bench watermark`: POST /v1/watermark with an image/jpeg body,
answered with the stamped JPEG (same work as stamp_pillow.py).

Usage: python3 bench/python/flask_server.py [--port 8090] [--threads]
(Flask's development server, threaded; one process, so one core for the
Python work because of the GIL.) For several processes, run it under
gunicorn: `gunicorn -w 2 -b 127.0.0.1:8090 'flask_server:app'` from this folder.
"""
import argparse
import io
import os

from flask import Flask, Response, request
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
MARK = Image.open(os.path.join(HERE, "..", "..", "tests", "data", "watermark_500x100.png")).convert("RGBA")
MARK.load()
MARGIN = 20

app = Flask(__name__)


@app.post("/v1/watermark")
def watermark() -> Response:
    body = request.get_data()
    if not body:
        return Response('{"error":"bad request","detail":"empty body"}', status=400,
                        mimetype="application/json")
    img = Image.open(io.BytesIO(body))
    pos = (img.width - MARK.width - MARGIN, img.height - MARK.height - MARGIN)
    img.paste(MARK, pos, MARK)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return Response(out.getvalue(), mimetype="image/jpeg")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8090)
    args = ap.parse_args()
    app.run(host="127.0.0.1", port=args.port, threaded=True)
