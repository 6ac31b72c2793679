"""ePassport chip transport and access control (ICAO 9303 Part 11) over PC/SC.

Pure protocol modules (``apdu``, ``tlv``, ``cipher``, ``secure_messaging``, ``bac``, ``pace``,
``reading``) are shared by the reader side (``pcsc``) and the simulated chip (``card``,
``simulator``). File contents are opaque bytes here; the LDS data side parses them.
"""
