"""ePassport chip (ICAO 9303): transport and access control over PC/SC (Part 11), and the LDS files.

Pure protocol modules (``apdu``, ``tlv``, ``cipher``, ``secure_messaging``, ``bac``, ``pace``,
``reading``) are shared by the reader side (``pcsc``, ``reader``) and the simulated chip (``card``,
``simulator``), which treat file contents as opaque bytes; ``lds`` builds and parses those files.
"""
