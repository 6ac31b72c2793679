"""The Logical Data Structure of an eMRTD chip (ICAO 9303-10): encoding and decoding of its files,
shared by the reader and the chip simulator. No trust decisions here (those are the kiosk's)."""
