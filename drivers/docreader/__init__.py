"""Serial MRZ document readers: wire protocol, driver, and a pty simulator of the same protocol."""

from drivers.docreader.reader import SerialDocumentReader, build

__all__ = ["SerialDocumentReader", "build"]
