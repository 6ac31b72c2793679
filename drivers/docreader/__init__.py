"""Serial MRZ document readers: wire protocol, driver, and a pty simulator of the same protocol.

``options`` holds the configuration sections (imported when a configuration loads, so it stays free
of the serial stack); ``reader.build`` turns a serial section into a running reader.
"""
