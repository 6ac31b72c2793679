"""The touchscreen: a Kivy app that observes and feeds the lane engine, and owns no border logic.

Import :mod:`kiosk.ui.environment` (and call ``prepare``) before anything that imports Kivy.
"""
