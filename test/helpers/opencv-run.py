"""Runs an exported headswap model.onnx in OpenCV's DNN module (Debian: python3-opencv), a runtime
independent of onnxruntime, for the portability checks.

Usage: python3 opencv-run.py MODEL.onnx PIXELS.bin COUNT HEIGHT WIDTH OUT.bin BATCH
PIXELS.bin holds COUNT uint8 RGB images [HEIGHT, WIDTH, 3] back to back (the model's `pixels`
input). The `probabilities` of every image go to OUT.bin as float32, back to back; stdout gets one
JSON line: the OpenCV version, the class count and the milliseconds per image of the forward passes.
"""
import json
import sys
import time

import cv2
import numpy as np

model, pixels, count, height, width, out, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], int(sys.argv[7])
net = cv2.dnn.readNetFromONNX(model)
data = np.fromfile(pixels, dtype=np.uint8).reshape((count, height, width, 3))
results = []
started = time.perf_counter()
for start in range(0, count, batch):
    net.setInput(data[start:start + batch], 'pixels')
    probs = net.forward('probabilities')
    results.append(probs.reshape((min(batch, count - start), -1)).astype(np.float32))
elapsed = time.perf_counter() - started
probs = np.concatenate(results)
probs.tofile(out)
print(json.dumps({'version': cv2.__version__, 'classes': int(probs.shape[1]), 'msPerImage': 1000 * elapsed / count}))
