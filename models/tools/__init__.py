"""Offline face-model tools: conversion, int8 calibration and quantization, evaluation, benchmarks.

Never imported by the kiosk at run time (a test checks): they need the ``onnx`` package, the dlib
model wheel, dlib itself (the benchmark oracle) or the LFW dev set, none of which a kiosk has.
"""
