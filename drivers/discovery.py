"""``python -m drivers discover [--json]``: what is plugged in, and a configuration to start from.

Lists USB devices (through pyusb) and serial ports (through pyserial), names the ones in
``drivers.known_devices``, and prints a suggested ``[devices.*]`` TOML section for each, using the
stable ``/dev/serial/by-id`` and ``/dev/v4l/by-id`` names udev creates (``/dev/ttyUSB0`` changes
with plug order; a by-id name follows the adapter).

It runs on a kiosk being set up, often without root: reading a USB device's strings needs the
device opened, which needs permission, so a device whose strings cannot be read is still listed,
by ids. A machine without libusb still gets its serial ports listed. Serial bridges do not say what
is wired behind them, so those suggestions stay commented out until the technician picks one.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import serial.tools.list_ports
import usb.core
import usb.util
from serial.tools.list_ports_common import ListPortInfo
from usb.backend import IBackend

from drivers.known_devices import VIDEO_INTERFACE_CLASS, Kind, lookup

log = logging.getLogger(__name__)

SERIAL_BY_ID = Path("/dev/serial/by-id")
V4L_BY_ID = Path("/dev/v4l/by-id")
# Bounds on descriptor walking: a broken device or backend must not keep discovery busy forever.
MAX_CONFIGURATIONS = 8
MAX_INTERFACES = 32
MAX_ALTERNATES = 64
MAX_STRING_CHARS = 64
# What a failed string read raises: USBError for I/O and permission errors, ValueError when the
# device offers no language ids (pyusb's answer when it could not open it), the rest from backends.
STRING_ERRORS = (usb.core.USBError, ValueError, NotImplementedError, OSError, UnicodeDecodeError)


@dataclass(frozen=True)
class UsbDevice:
    vid: int
    pid: int
    bus: int | None
    address: int | None
    manufacturer: str | None
    product: str | None
    serial_number: str | None
    strings_readable: bool
    interface_classes: tuple[int, ...]
    kind: str | None  # a drivers.known_devices.Kind value
    known_as: str | None

    @property
    def ids(self) -> str:
        return f"{self.vid:04x}:{self.pid:04x}"


@dataclass(frozen=True)
class SerialPort:
    device: str
    stable_path: str | None  # the /dev/serial/by-id link to it, when udev made one
    vid: int | None
    pid: int | None
    serial_number: str | None
    description: str
    kind: str | None
    known_as: str | None

    @property
    def config_port(self) -> str:
        return self.stable_path or self.device


@dataclass(frozen=True)
class Discovery:
    usb: tuple[UsbDevice, ...]
    serial: tuple[SerialPort, ...]
    cameras: tuple[str, ...]  # V4L2 capture nodes by stable name
    problems: tuple[str, ...] = field(default=())
    elapsed_s: float = 0.0


# --- USB ---------------------------------------------------------------------------------------------


def list_usb(backend: IBackend | None = None) -> list[UsbDevice]:
    """Every USB device ``backend`` (default: pyusb's choice, usually libusb 1.0) enumerates.

    Raises usb.core.NoBackendError when no USB library is installed.
    """
    return [_describe(dev) for dev in usb.core.find(find_all=True, backend=backend)]


def _describe(dev: usb.core.Device) -> UsbDevice:
    classes = tuple(sorted(set(_interface_classes(dev))))
    strings: dict[str, str | None] = {}
    readable = True
    for attribute in ("manufacturer", "product", "serial_number"):
        try:
            strings[attribute] = _printable(getattr(dev, attribute))
        except STRING_ERRORS as exc:
            strings[attribute] = None
            if readable:
                log.debug(
                    "%04x:%04x: strings unreadable (%s)", dev.idVendor, dev.idProduct, type(exc).__name__
                )
            readable = False
    # Reading strings opened the device; close it so the driver that owns it is not disturbed.
    try:
        usb.util.dispose_resources(dev)
    except usb.core.USBError as exc:
        log.debug("%04x:%04x: closing failed (%s)", dev.idVendor, dev.idProduct, exc)
    known = lookup(dev.idVendor, dev.idProduct)
    kind = known.kind if known else (Kind.CAMERA if VIDEO_INTERFACE_CLASS in classes else None)
    return UsbDevice(
        vid=dev.idVendor,
        pid=dev.idProduct,
        bus=dev.bus,
        address=dev.address,
        manufacturer=strings["manufacturer"],
        product=strings["product"],
        serial_number=strings["serial_number"],
        strings_readable=readable,
        interface_classes=classes,
        kind=str(kind) if kind else None,
        known_as=known.name if known else ("USB video (UVC) camera" if kind is Kind.CAMERA else None),
    )


def _interface_classes(dev: usb.core.Device) -> Iterator[int]:
    """The class of every interface and alternate setting, walked with bounds.

    Not ``Configuration.interfaces()``: pyusb stops that walk only when the backend raises for a
    missing alternate setting, and a backend that does not would keep it going forever.
    """
    if dev.bDeviceClass:
        yield dev.bDeviceClass
    for config_index in range(min(dev.bNumConfigurations, MAX_CONFIGURATIONS)):
        try:
            config = dev[config_index]
        except (usb.core.USBError, IndexError, NotImplementedError):
            continue
        for number in range(min(config.bNumInterfaces, MAX_INTERFACES)):
            for alternate in range(MAX_ALTERNATES):
                try:
                    interface = config[(number, alternate)]
                except (usb.core.USBError, IndexError, NotImplementedError):
                    break
                if interface.bInterfaceNumber != number or interface.bAlternateSetting != alternate:
                    break  # the backend answered for a setting that does not exist
                yield interface.bInterfaceClass


def _printable(value: str | None) -> str | None:
    """Device strings are whatever the firmware says: keep them to one short printable line."""
    if value is None:
        return None
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in value).strip()
    return cleaned[:MAX_STRING_CHARS] or None


# --- serial ports ------------------------------------------------------------------------------------


def list_serial(
    ports: Iterable[ListPortInfo] | None = None, by_id_dir: Path = SERIAL_BY_ID
) -> list[SerialPort]:
    """The serial ports ``ports`` describes (default: pyserial's ``comports()``), with stable names."""
    infos = list(serial.tools.list_ports.comports() if ports is None else ports)
    stable = _links_by_target(by_id_dir)
    found = []
    for info in sorted(infos):
        known = lookup(info.vid, info.pid)
        found.append(
            SerialPort(
                device=info.device,
                stable_path=stable.get(os.path.realpath(info.device)),
                vid=info.vid,
                pid=info.pid,
                serial_number=_printable(info.serial_number),
                description=_printable(info.description) or "n/a",
                kind=str(known.kind) if known else None,
                known_as=known.name if known else None,
            )
        )
    return found


def _links_by_target(directory: Path) -> dict[str, str]:
    """``{real device path: link}`` for the symlinks in ``directory`` (udev's by-id folders)."""
    try:
        entries = sorted(directory.iterdir())
    except OSError:
        return {}
    return {os.path.realpath(entry): str(entry) for entry in entries if entry.is_symlink()}


def list_cameras(by_id_dir: Path = V4L_BY_ID) -> list[str]:
    """V4L2 capture nodes by stable name (``-video-index0``; other indexes are metadata nodes)."""
    try:
        return sorted(str(p) for p in by_id_dir.iterdir() if p.name.endswith("-video-index0"))
    except OSError:
        return []


# --- all together ------------------------------------------------------------------------------------


def discover(
    *,
    usb_backend: IBackend | None = None,
    ports: Iterable[ListPortInfo] | None = None,
    serial_by_id: Path = SERIAL_BY_ID,
    v4l_by_id: Path = V4L_BY_ID,
) -> Discovery:
    """Everything attached; a part that cannot be listed becomes a problem, not a failure."""
    started = time.monotonic()
    problems: list[str] = []
    try:
        usb_devices = list_usb(usb_backend)
    except usb.core.NoBackendError:
        usb_devices = []
        problems.append("USB devices not listed: no USB library (install libusb-1.0)")
    except usb.core.USBError as exc:
        usb_devices = []
        problems.append(f"USB devices not listed: {exc}")
    if any(not d.strings_readable for d in usb_devices):
        problems.append("some USB device names are unreadable without permission (run as root to see them)")
    serial_ports = tuple(list_serial(ports, serial_by_id))
    cameras = tuple(list_cameras(v4l_by_id))
    return Discovery(
        usb=tuple(usb_devices),
        serial=serial_ports,
        cameras=cameras,
        problems=tuple(problems),
        elapsed_s=round(time.monotonic() - started, 4),
    )


def suggest_config(found: Discovery) -> str:
    """A TOML starting point; every value is a suggestion to check, and the text always parses."""
    lines = ["# Suggested by `python -m drivers discover`: check each value before use."]
    uvc = [d for d in found.usb if d.kind == Kind.CAMERA]
    if found.cameras or uvc:
        port = found.cameras[0] if found.cameras else "/dev/video0"
        lines += ["", "[devices.camera]", 'backend = "v4l2"', f"port = {_toml_string(port)}"]
        if len(found.cameras) > 1 or (not found.cameras and len(uvc) > 1):
            names = ", ".join(_printable(name) or "?" for name in found.cameras) or "see the USB list"
            lines.append(f"# more than one camera is attached: {names}")
    else:
        lines += ["", "# No USB camera found. A Raspberry Pi camera is not a USB device:"]
        lines += ["# [devices.camera]", '# backend = "picamera2"']
    for port in found.serial:
        lines += ["", f"# {_printable(port.device)}: {_serial_label(port)}; uncomment ONE of these for it:"]
        for section, backend, extra in (
            ("fingerprint", "serial", "baudrate = 57600  # ZhianTec R30x default"),
            ("document_reader", "serial", None),
            ("gate", "modbus", None),
        ):
            lines += [f"# [devices.{section}]", f'# backend = "{backend}"']
            lines.append(f"# port = {_toml_string(port.config_port)}")
            if extra:
                lines.append(f"# {extra}")
    for device in found.usb:
        if device.kind in (Kind.FINGERPRINT, Kind.DOCUMENT_READER):
            lines += [
                "",
                f"# {device.ids} {device.known_as}: a USB {device.kind}; this build has no driver for it",
            ]
    return "\n".join(lines) + "\n"


def _serial_label(port: SerialPort) -> str:
    ids = f" ({port.vid:04x}:{port.pid:04x})" if port.vid is not None and port.pid is not None else ""
    behind = f" behind a {port.known_as}" if port.kind == Kind.SERIAL_BRIDGE else ""
    return f"unknown serial device{behind}{ids}"


def _toml_string(value: str) -> str:
    """A TOML basic string; anything but printable ASCII is escaped, so the text always parses."""
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isascii() and ch.isprintable():
            out.append(ch)
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            out.append("?")  # an undecodable byte in a file name: TOML has no way to carry it
        else:
            out.append(f"\\u{ord(ch):04X}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08X}")
    return '"' + "".join(out) + '"'


# --- command line ------------------------------------------------------------------------------------


def render(found: Discovery) -> str:
    out = [f"USB devices ({len(found.usb)}):"]
    for d in found.usb:
        names = " / ".join(n for n in (d.manufacturer, d.product) if n) or (
            "(names unreadable)" if not d.strings_readable else "(no names)"
        )
        where = f"bus {d.bus} addr {d.address}" if d.bus is not None else ""
        what = f"  -> {d.kind}: {d.known_as}" if d.kind else ""
        out.append(f"  {d.ids}  {where}  {names}{what}")
    out.append(f"Serial ports ({len(found.serial)}):")
    for p in found.serial:
        ids = f"{p.vid:04x}:{p.pid:04x}" if p.vid is not None and p.pid is not None else "no USB ids"
        stable = f" = {p.stable_path}" if p.stable_path else ""
        out.append(f"  {p.device}{stable}  {ids}  {p.description}  -> {_serial_label(p)}")
    out.append(f"Cameras (V4L2 by-id): {', '.join(found.cameras) or 'none'}")
    out += [f"Note: {problem}" for problem in found.problems]
    out.append(f"Listed in {found.elapsed_s * 1000:.1f} ms.")
    out += ["", suggest_config(found)]
    return "\n".join(out)


def as_json(found: Discovery) -> dict[str, Any]:
    return {**asdict(found), "suggested_config": suggest_config(found)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m drivers discover", description="List attached devices.")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    found = discover()
    print(json.dumps(as_json(found), indent=2) if args.json else render(found))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
