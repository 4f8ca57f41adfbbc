"""Make ksentinel's tiny playable media file: 1 s of 64x64 H.264 video at 10 fps with a 1 kHz AAC tone."""

import math
import sys

import av
import numpy as np

out = sys.argv[1]
container = av.open(out, mode="w", options={"movflags": "+faststart"})
v = container.add_stream("libx264", rate=10)
v.width = v.height = 64
v.pix_fmt = "yuv420p"
v.options = {"crf": "35", "preset": "veryslow"}
a = container.add_stream("aac", rate=8000)
a.layout = "mono"
for i in range(10):
    img = np.zeros((64, 64, 3), dtype=np.uint8)
    img[:, : 6 * (i + 1)] = (255, 128, 0)
    frame = av.VideoFrame.from_ndarray(img, format="rgb24")
    for p in v.encode(frame):
        container.mux(p)
for p in v.encode():
    container.mux(p)
samples = np.array([[math.sin(2 * math.pi * 1000 * t / 8000) * 0.3 for t in range(8000)]], dtype=np.float32)
af = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
af.sample_rate = 8000
for p in a.encode(af):
    container.mux(p)
for p in a.encode():
    container.mux(p)
container.close()
