"""Face models: the matching interface, the ONNX pipeline, and the model build/verify tooling."""

import os

# onnxruntime writes a device id and session files for Microsoft's telemetry unless told not to
# before it is imported; nothing about a border kiosk may leave traces for anyone else.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
