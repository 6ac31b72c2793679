"""Face matching on the kiosk: the matching interface, the simulated matcher and the ONNX pipeline.

The modules directly in this package are what a kiosk runs; ``models.tools`` holds the offline
tools (model build, int8 calibration, evaluation, benchmarks) and is never imported by them.
"""

import os

# onnxruntime writes a device id and session files for Microsoft's telemetry unless told not to
# before it is imported; nothing about a border kiosk may leave traces for anyone else.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
