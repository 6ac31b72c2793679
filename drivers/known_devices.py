"""USB ids of devices an e-gate lane is built from, for ``python -m drivers discover``.

Every id here was checked against the Linux USB ID repository (usb.ids, version 2025.07.26, as
shipped in Debian's hwdata). USB-serial bridges say nothing about what is wired behind them (an
R30x fingerprint module, an MRZ reader, an RS-485 door controller all sit behind a CH340 or an
FTDI chip), so discovery reports them as unknown serial devices and leaves the choice to the
technician. Cameras are recognised by their USB video interface class, not by id: there are
thousands of UVC models. Document readers are listed only where an id was verifiable; others show
up as unknown devices.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# USB interface class of UVC video devices (usb.ids "C 0e Video").
VIDEO_INTERFACE_CLASS = 0x0E


class Kind(StrEnum):
    SERIAL_BRIDGE = "usb-serial bridge"
    FINGERPRINT = "fingerprint reader"
    DOCUMENT_READER = "document reader"
    CAMERA = "camera"


@dataclass(frozen=True)
class KnownDevice:
    vid: int
    pid: int | None  # None: any product of this vendor (a vendor that makes nothing else)
    kind: Kind
    name: str

    @property
    def ids(self) -> str:
        return f"{self.vid:04x}:{self.pid:04x}" if self.pid is not None else f"{self.vid:04x}:*"


def _products(vid: int, pids: tuple[int, ...], kind: Kind, name: str) -> tuple[KnownDevice, ...]:
    return tuple(KnownDevice(vid, pid, kind, name) for pid in pids)


KNOWN_DEVICES: tuple[KnownDevice, ...] = (
    KnownDevice(0x1A86, 0x7523, Kind.SERIAL_BRIDGE, "QinHeng CH340 serial converter"),
    KnownDevice(0x1A86, 0x5523, Kind.SERIAL_BRIDGE, "QinHeng CH341 in serial mode"),
    KnownDevice(0x10C4, 0xEA60, Kind.SERIAL_BRIDGE, "Silicon Labs CP210x UART bridge"),
    KnownDevice(0x0403, 0x6001, Kind.SERIAL_BRIDGE, "FTDI FT232R serial (UART)"),
    KnownDevice(0x0403, 0x6015, Kind.SERIAL_BRIDGE, "FTDI FT-X series bridge (FT231X/FT230X)"),
    KnownDevice(0x067B, 0x2303, Kind.SERIAL_BRIDGE, "Prolific PL2303 serial port"),
    *_products(0x05BA, (0x0007, 0x0008, 0x000A), Kind.FINGERPRINT, "DigitalPersona fingerprint reader"),
    KnownDevice(0x1491, 0x0020, Kind.FINGERPRINT, "Futronic FS80/FS81 fingerprint scanner"),
    KnownDevice(0x1491, 0x0088, Kind.FINGERPRINT, "Futronic FS88 fingerprint scanner"),
    KnownDevice(0x16D1, 0x0401, Kind.FINGERPRINT, "Suprema BioMini (SFR400) fingerprint reader"),
    KnownDevice(0x1162, None, Kind.FINGERPRINT, "SecuGen fingerprint reader"),
    *_products(
        0x147E,
        (0x1000, 0x1001, 0x1002, 0x2016, 0x2020, 0x3000, 0x3001),
        Kind.FINGERPRINT,
        "UPEK fingerprint sensor",
    ),
    *_products(0x080B, (0x0002, 0x0010), Kind.FINGERPRINT, "Cross Match fingerprint scanner"),
    KnownDevice(0x113F, 0x1020, Kind.FINGERPRINT, "Integrated Biometrics Watson two-finger scanner"),
    KnownDevice(0x113F, 0x1100, Kind.FINGERPRINT, "Integrated Biometrics Columbo fingerprint scanner"),
    *_products(0x1FAE, (0x0040, 0x212C), Kind.FINGERPRINT, "Lumidigm fingerprint sensor"),
    *_products(
        0x225D,
        (0x0008, 0x0009, 0x000A, 0x000B, 0x000C, 0x000D),
        Kind.FINGERPRINT,
        "Morpho fingerprint sensor",
    ),
    KnownDevice(0x04DA, 0x3C04, Kind.DOCUMENT_READER, "Panasonic JT-P100MR-20 ePassport reader"),
)

_BY_PRODUCT = {(d.vid, d.pid): d for d in KNOWN_DEVICES if d.pid is not None}
_BY_VENDOR = {d.vid: d for d in KNOWN_DEVICES if d.pid is None}


def lookup(vid: int | None, pid: int | None) -> KnownDevice | None:
    """The known device with these ids: an exact product first, then a vendor that makes only such devices."""
    if vid is None:
        return None
    return _BY_PRODUCT.get((vid, pid)) or _BY_VENDOR.get(vid)
