"""Runs a .tflite model on ArmNN's reference CPU backend (Debian: python3-pyarmnn), the
independent TFLite runtime the importer's parity checks compare with.

Usage: python3 armnn-run.py MODEL.tflite IMAGES.bin COUNT OUT_DIR
IMAGES.bin holds COUNT input tensors back to back, in the input's own type (uint8 for a
quantized model, float32 little-endian otherwise). Each output k of every image goes to
OUT_DIR/<k>.bin, images back to back, raw; stdout gets one JSON line describing the outputs.
"""
import json
import os
import sys

import numpy as np
import pyarmnn as ann

model, images, count, out_dir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
parser = ann.ITfLiteParser()
network = parser.CreateNetworkFromBinaryFile(model)
input_info = parser.GetNetworkInputBindingInfo(0, parser.GetSubgraphInputTensorNames(0)[0])
output_names = parser.GetSubgraphOutputTensorNames(0)
output_infos = [parser.GetNetworkOutputBindingInfo(0, n) for n in output_names]
runtime = ann.IRuntime(ann.CreationOptions())
optimized, _ = ann.Optimize(network, [ann.BackendId('CpuRef')], runtime.GetDeviceSpec(), ann.OptimizerOptions())
network_id, _ = runtime.LoadNetwork(optimized)

shape = tuple(input_info[1].GetShape()[i] for i in range(input_info[1].GetNumDimensions()))
dtype = np.uint8 if input_info[1].GetDataType() == ann.DataType_QAsymmU8 else np.int8 if input_info[1].GetDataType() == ann.DataType_QAsymmS8 else np.float32
data = np.fromfile(images, dtype=dtype).reshape((count,) + shape[1:])
files = [open(os.path.join(out_dir, f'{k}.bin'), 'wb') for k in range(len(output_infos))]
arrays = None
for i in range(count):
    inputs = ann.make_input_tensors([input_info], [data[i:i + 1]])
    outputs = ann.make_output_tensors(output_infos)
    runtime.EnqueueWorkload(network_id, inputs, outputs)
    arrays = ann.workload_tensors_to_ndarray(outputs)
    for f, a in zip(files, arrays):
        f.write(a.tobytes())
for f in files:
    f.close()
print(json.dumps([
    {'name': name, 'dtype': str(a.dtype), 'shape': list(a.shape), 'scale': info[1].GetQuantizationScale(), 'zeroPoint': info[1].GetQuantizationOffset()}
    for name, a, info in zip(output_names, arrays, output_infos)
]))
