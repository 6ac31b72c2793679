"""Cameras: the Pi camera (picamera2), USB cameras (OpenCV/V4L2) and a file player, each behind the
frame watchdog that restarts a stalled camera and reports its health.

``options`` holds the ``[devices.camera]`` sections (loaded with the configuration, so free of
OpenCV); ``factory.build`` turns one into a started camera.
"""
