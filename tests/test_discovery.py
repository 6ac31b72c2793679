"""Discovery over a synthetic USB bus (a real pyusb backend presenting made-up descriptors, the way
pyusb's own tests do) and real pyserial port records."""

from __future__ import annotations

import array
import errno
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import usb.core
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from serial.tools.list_ports_common import ListPortInfo
from usb.backend import IBackend

from config import Config
from drivers.discovery import Discovery, SerialPort, discover, list_serial, list_usb, main, suggest_config
from drivers.known_devices import KNOWN_DEVICES, Kind, lookup

GET_DESCRIPTOR = 0x06
STRING_DESCRIPTOR = 0x03
LANGID_EN_US = 0x0409


@dataclass
class FakeUsbDevice:
    vid: int
    pid: int
    # configurations -> interfaces -> alternate settings -> interface class
    configurations: list[list[list[int]]] = field(default_factory=lambda: [[[0xFF]]])
    strings: dict[int, str] = field(default_factory=dict)  # 1 manufacturer, 2 product, 3 serial
    device_class: int = 0
    deny_open: bool = False  # no permission: opening (needed for strings) fails
    broken_strings: bool = False  # opens, but string requests fail
    address: int = 1


class SyntheticBus(IBackend):
    """A pyusb backend over :class:`FakeUsbDevice` records.

    ``lenient`` answers for any alternate setting (it repeats setting 0) instead of raising
    IndexError like libusb does: pyusb's own interface walk never ends on such a backend.
    """

    def __init__(self, devices: list[FakeUsbDevice], *, lenient: bool = False) -> None:
        super().__init__()
        self.devices = devices
        self.lenient = lenient
        self.open_handles: set[int] = set()
        self.interface_lookups = 0

    def enumerate_devices(self) -> Any:
        return iter(self.devices)

    def get_device_descriptor(self, dev: FakeUsbDevice) -> Any:
        return SimpleNamespace(
            bLength=18,
            bDescriptorType=1,
            bcdUSB=0x0200,
            bDeviceClass=dev.device_class,
            bDeviceSubClass=0,
            bDeviceProtocol=0,
            bMaxPacketSize0=64,
            idVendor=dev.vid,
            idProduct=dev.pid,
            bcdDevice=0x0100,
            iManufacturer=1 if 1 in dev.strings else 0,
            iProduct=2 if 2 in dev.strings else 0,
            iSerialNumber=3 if 3 in dev.strings else 0,
            bNumConfigurations=len(dev.configurations),
            address=dev.address,
            bus=1,
            port_number=dev.address,
            port_numbers=(dev.address,),
            speed=3,
        )

    def get_configuration_descriptor(self, dev: FakeUsbDevice, config: int) -> Any:
        if config >= len(dev.configurations):
            raise IndexError("no such configuration")
        return SimpleNamespace(
            bLength=9,
            bDescriptorType=2,
            wTotalLength=9,
            bNumInterfaces=len(dev.configurations[config]),
            bConfigurationValue=config + 1,
            iConfiguration=0,
            bmAttributes=0x80,
            bMaxPower=50,
            extra_descriptors=[],
        )

    def get_interface_descriptor(self, dev: FakeUsbDevice, intf: int, alt: int, config: int) -> Any:
        self.interface_lookups += 1
        alternates = dev.configurations[config][intf]
        if alt >= len(alternates):
            if not self.lenient:
                raise IndexError("no such alternate setting")
            alt = 0
        return SimpleNamespace(
            bLength=9,
            bDescriptorType=4,
            bInterfaceNumber=intf,
            bAlternateSetting=alt,
            bNumEndpoints=0,
            bInterfaceClass=alternates[alt],
            bInterfaceSubClass=0,
            bInterfaceProtocol=0,
            iInterface=0,
            extra_descriptors=[],
        )

    def get_endpoint_descriptor(self, dev: FakeUsbDevice, ep: int, intf: int, alt: int, config: int) -> Any:
        raise IndexError("no endpoints")

    def open_device(self, dev: FakeUsbDevice) -> FakeUsbDevice:
        if dev.deny_open:
            raise usb.core.USBError("Access denied (insufficient permissions)", errno.EACCES)
        self.open_handles.add(id(dev))
        return dev

    def close_device(self, dev_handle: FakeUsbDevice) -> None:
        self.open_handles.discard(id(dev_handle))

    def ctrl_transfer(
        self,
        dev_handle: FakeUsbDevice,
        bmRequestType: int,
        bRequest: int,
        wValue: int,
        wIndex: int,
        data_or_wLength: Any,
        timeout: int,
    ) -> int:
        if dev_handle.broken_strings:
            raise usb.core.USBError("Pipe error", errno.EPIPE)
        kind, index = wValue >> 8, wValue & 0xFF
        if bRequest != GET_DESCRIPTOR or kind != STRING_DESCRIPTOR:
            raise usb.core.USBError("Pipe error", errno.EPIPE)
        if index == 0:
            payload = bytes([4, STRING_DESCRIPTOR]) + LANGID_EN_US.to_bytes(2, "little")
        else:
            text = dev_handle.strings[index].encode("utf-16-le")
            payload = bytes([2 + len(text), STRING_DESCRIPTOR]) + text
        count = min(len(payload), len(data_or_wLength))
        data_or_wLength[:count] = array.array("B", payload[:count])
        return count


CH340 = FakeUsbDevice(0x1A86, 0x7523, strings={2: "USB Serial"}, address=2)
WEBCAM = FakeUsbDevice(
    0x046D,
    0x0825,
    # Two configurations; a video control and a video streaming interface with several
    # alternate settings (bandwidth steps), plus audio.
    configurations=[[[0x0E], [0x0E, 0x0E, 0x0E, 0x0E], [0x01, 0x01]], [[0xFF], [0x0E]]],
    strings={1: "Webcam Maker", 2: "HD Webcam", 3: "A1B2"},
    device_class=0xEF,
    address=3,
)
LOCKED_FINGERPRINT = FakeUsbDevice(0x05BA, 0x000A, strings={2: "U.are.U"}, deny_open=True, address=4)
FLAKY = FakeUsbDevice(0x1234, 0x5678, strings={1: "Flaky"}, broken_strings=True, address=5)


@pytest.mark.timeout(30)
def test_usb_devices_are_listed_with_names_and_known_kinds() -> None:
    bus = SyntheticBus([CH340, WEBCAM])
    found = {d.ids: d for d in list_usb(bus)}
    assert set(found) == {"1a86:7523", "046d:0825"}
    bridge = found["1a86:7523"]
    assert (bridge.kind, bridge.known_as, bridge.product, bridge.manufacturer) == (
        "usb-serial bridge",
        "QinHeng CH340 serial converter",
        "USB Serial",
        None,
    )
    webcam = found["046d:0825"]
    assert webcam.kind == Kind.CAMERA  # by its video interface, not by its ids
    assert (webcam.manufacturer, webcam.product, webcam.serial_number) == (
        "Webcam Maker",
        "HD Webcam",
        "A1B2",
    )
    assert webcam.interface_classes == (0x01, 0x0E, 0xEF, 0xFF)
    assert webcam.strings_readable
    assert bus.open_handles == set()  # every device opened for its strings was closed again


@pytest.mark.timeout(30)
def test_a_device_whose_strings_cannot_be_read_is_listed_by_ids() -> None:
    found = {d.ids: d for d in list_usb(SyntheticBus([LOCKED_FINGERPRINT, FLAKY]))}
    locked = found["05ba:000a"]
    assert not locked.strings_readable and locked.product is None
    assert (locked.kind, locked.known_as) == ("fingerprint reader", "DigitalPersona fingerprint reader")
    flaky = found["1234:5678"]
    assert not flaky.strings_readable and flaky.manufacturer is None and flaky.kind is None


@pytest.mark.timeout(30)
def test_interface_walk_ends_on_a_backend_that_never_says_no_more() -> None:
    bus = SyntheticBus([WEBCAM], lenient=True)
    (webcam,) = list_usb(bus)
    assert webcam.interface_classes == (0x01, 0x0E, 0xEF, 0xFF)
    assert bus.interface_lookups < 50


@pytest.mark.timeout(30)
def test_serial_ports_get_stable_names_and_bridge_names(tmp_path: Path) -> None:
    by_id = tmp_path / "by-id"
    by_id.mkdir()
    (by_id / "usb-1a86_USB_Serial-if00-port0").symlink_to("/dev/ttyUSB0")
    ports = [
        usb_port("/dev/ttyUSB0", 0x1A86, 0x7523, None, "USB Serial"),
        usb_port("/dev/ttyUSB1", 0x0403, 0x6001, "A50285BI", "FT232R USB UART"),
        ListPortInfo("/dev/ttyAMA0", skip_link_detection=True),
    ]
    found = {p.device: p for p in list_serial(ports, by_id)}
    ch340 = found["/dev/ttyUSB0"]
    assert ch340.stable_path == str(by_id / "usb-1a86_USB_Serial-if00-port0")
    assert ch340.config_port == ch340.stable_path
    assert (ch340.kind, ch340.known_as) == ("usb-serial bridge", "QinHeng CH340 serial converter")
    ftdi = found["/dev/ttyUSB1"]
    assert (ftdi.stable_path, ftdi.config_port, ftdi.serial_number) == (None, "/dev/ttyUSB1", "A50285BI")
    assert ftdi.known_as == "FTDI FT232R serial (UART)"
    uart = found["/dev/ttyAMA0"]
    assert (uart.vid, uart.kind, uart.description) == (None, None, "n/a")


def usb_port(device: str, vid: int, pid: int, serial_number: str | None, product: str) -> ListPortInfo:
    info = ListPortInfo(device, skip_link_detection=True)
    info.vid, info.pid, info.serial_number, info.product = vid, pid, serial_number, product
    info.apply_usb_info()
    return info


@pytest.mark.timeout(30)
def test_the_suggested_config_is_valid_toml_that_the_kiosk_accepts(tmp_path: Path) -> None:
    by_id = tmp_path / "by-id"
    by_id.mkdir()
    (by_id / "usb-1a86_USB_Serial-if00-port0").symlink_to("/dev/ttyUSB0")
    v4l = tmp_path / "v4l"
    v4l.mkdir()
    for name in ("usb-Maker_HD_Webcam_A1B2-video-index0", "usb-Maker_HD_Webcam_A1B2-video-index1"):
        (v4l / name).symlink_to("/dev/video0")
    found = discover(
        usb_backend=SyntheticBus([CH340, WEBCAM, LOCKED_FINGERPRINT]),
        ports=[usb_port("/dev/ttyUSB0", 0x1A86, 0x7523, None, "USB Serial")],
        serial_by_id=by_id,
        v4l_by_id=v4l,
    )
    assert found.cameras == (str(v4l / "usb-Maker_HD_Webcam_A1B2-video-index0"),)
    assert any("permission" in problem for problem in found.problems)
    text = suggest_config(found)
    suggested = tomllib.loads(text)
    assert suggested["devices"]["camera"] == {"backend": "v4l2", "port": found.cameras[0]}
    assert "fingerprint" not in suggested["devices"]  # a bridge does not say what is behind it
    assert "05ba:000a DigitalPersona fingerprint reader" in text
    # Uncommenting the fingerprint choice gives a section the kiosk's configuration accepts.
    chosen = text.replace(
        '# [devices.fingerprint]\n# backend = "serial"\n# port',
        '[devices.fingerprint]\nbackend = "serial"\nport',
    )
    chosen = chosen.replace("# baudrate = 57600", "baudrate = 57600", 1)
    config = Config.model_validate(tomllib.loads(chosen))
    assert config.devices.fingerprint.port == str(by_id / "usb-1a86_USB_Serial-if00-port0")
    assert config.devices.fingerprint.baudrate == 57600
    assert config.devices.camera.backend == "v4l2"


@pytest.mark.timeout(30)
def test_without_usb_the_serial_ports_are_still_listed() -> None:
    class DeadBus(SyntheticBus):
        def enumerate_devices(self) -> Any:
            raise usb.core.USBError("bus gone", errno.ENODEV)

    found = discover(usb_backend=DeadBus([]), ports=[ListPortInfo("/dev/ttyS0", skip_link_detection=True)])
    assert found.usb == () and [p.device for p in found.serial] == ["/dev/ttyS0"]
    assert found.problems and "bus gone" in found.problems[0]
    assert "picamera2" in suggest_config(found)


device_names = st.text(min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(devices=st.lists(device_names, max_size=4), cameras=st.lists(device_names, max_size=3))
def test_the_suggested_config_always_parses(devices: list[str], cameras: list[str]) -> None:
    ports = tuple(
        SerialPort(
            device=d,
            stable_path=None,
            vid=0x1A86,
            pid=0x7523,
            serial_number=None,
            description="x",
            kind=None,
            known_as=None,
        )
        for d in devices
    )
    parsed = tomllib.loads(suggest_config(Discovery(usb=(), serial=ports, cameras=tuple(cameras))))
    if cameras:
        assert parsed["devices"]["camera"]["port"] == cameras[0]


def test_an_undecodable_file_name_still_gives_parseable_toml() -> None:
    found = Discovery(usb=(), serial=(), cameras=("/dev/v4l/by-id/cam\udcff-video-index0",))
    assert (
        tomllib.loads(suggest_config(found))["devices"]["camera"]["port"]
        == "/dev/v4l/by-id/cam?-video-index0"
    )


def test_known_device_table_is_consistent() -> None:
    pairs = [(d.vid, d.pid) for d in KNOWN_DEVICES]
    assert len(pairs) == len(set(pairs))
    assert all(0 <= d.vid <= 0xFFFF and (d.pid is None or 0 <= d.pid <= 0xFFFF) for d in KNOWN_DEVICES)
    for vid, pid, kind in (
        (0x1A86, 0x7523, Kind.SERIAL_BRIDGE),
        (0x1A86, 0x5523, Kind.SERIAL_BRIDGE),
        (0x10C4, 0xEA60, Kind.SERIAL_BRIDGE),
        (0x0403, 0x6001, Kind.SERIAL_BRIDGE),
        (0x0403, 0x6015, Kind.SERIAL_BRIDGE),
        (0x067B, 0x2303, Kind.SERIAL_BRIDGE),
        (0x1162, 0x2200, Kind.FINGERPRINT),  # a vendor that makes only fingerprint readers
    ):
        known = lookup(vid, pid)
        assert known is not None and known.kind is kind
    assert lookup(0x0403, 0x6010) is None and lookup(None, None) is None


@pytest.mark.timeout(30)
def test_the_command_prints_json_and_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"usb", "serial", "cameras", "problems", "elapsed_s", "suggested_config"} <= set(report)
    tomllib.loads(report["suggested_config"])
    print(f"discovery on this machine: {report['elapsed_s'] * 1000:.1f} ms")
    assert main([]) == 0
    assert "Suggested by" in capsys.readouterr().out


@settings(max_examples=150, deadline=None)
@given(manufacturer=st.text(min_size=1, max_size=120), product=st.text(min_size=1, max_size=120))
def test_whatever_a_device_calls_itself_is_shown_as_one_short_printable_line(
    manufacturer: str, product: str
) -> None:
    assume(len(manufacturer.encode("utf-16-le")) <= 250 and len(product.encode("utf-16-le")) <= 250)
    device = FakeUsbDevice(0x1A86, 0x7523, strings={1: manufacturer, 2: product})
    (listed,) = list_usb(SyntheticBus([device]))
    for name in (listed.manufacturer, listed.product):
        assert name is None or (name.isprintable() and 0 < len(name) <= 64)
    assert listed.kind == "usb-serial bridge"
