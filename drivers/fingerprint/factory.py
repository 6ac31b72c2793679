"""Turns the ``[devices.fingerprint]`` configuration section into a running R30x sensor driver."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drivers.backoff import Backoff
from drivers.fingerprint.client import DEFAULT_RESPONSE_TIMEOUT_S, R30xClient
from drivers.fingerprint.commands import DEFAULT_PASSWORD, TEMPLATE_SIZE
from drivers.fingerprint.protocol import DEFAULT_ADDRESS, MAX_TRANSFER
from drivers.fingerprint.sensor import DEFAULT_POLL_INTERVAL_S, DEFAULT_THRESHOLD, R30xFingerprintSensor
from drivers.serial_link import SerialLink
from kiosk.config import DeviceSection

DEFAULT_BAUDRATE = 57600
# How long a read waits for bytes; an empty read also tells the parser the module went quiet.
_READ_TIMEOUT_S = 0.05


class R30xOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    address: int = Field(DEFAULT_ADDRESS, ge=0, le=0xFFFFFFFF)
    password: int = Field(DEFAULT_PASSWORD, ge=0, le=0xFFFFFFFF)
    threshold: int = Field(DEFAULT_THRESHOLD, ge=0, le=0xFFFF)
    response_timeout_s: float = Field(DEFAULT_RESPONSE_TIMEOUT_S, gt=0, le=30)
    poll_interval_s: float = Field(DEFAULT_POLL_INTERVAL_S, gt=0, le=5)
    template_size: int = Field(TEMPLATE_SIZE, ge=1, le=MAX_TRANSFER)
    reconnect_initial_s: float = Field(0.2, gt=0, le=60)
    reconnect_max_s: float = Field(5.0, gt=0, le=600)


def build(section: DeviceSection) -> R30xFingerprintSensor:
    """The R30x / AS608 sensor described by ``section`` (``backend = "serial"``).

    ``port`` is the serial device (a udev name such as ``/dev/fingerprint`` survives replugging);
    ``baudrate`` defaults to 57600, the modules' factory setting. ``options``:

    - ``address`` (int, default ``0xFFFFFFFF``): module address, as set on the module.
    - ``password`` (int, default ``0``): module password, verified on every (re)connection.
    - ``threshold`` (int, default 50): lowest module match score that counts as a match. The
      module's own security level is a floor below it (under it the module reports score 0).
    - ``response_timeout_s`` (float, default 2.0): longest wait for any answer of the module.
    - ``poll_interval_s`` (float, default 0.05): pause between "is there a finger" captures.
    - ``template_size`` (int, default 512): bytes of a reference template for this module model.
    - ``reconnect_initial_s`` / ``reconnect_max_s`` (float, defaults 0.2 / 5.0): the jittered
      backoff between attempts to reopen a vanished port.

    Opens nothing yet: the port is opened and the password verified on the first use or health
    check. Raises ``ValueError`` for a section this driver cannot serve; the message names the key
    and never repeats a value (the password is one of them).
    """
    if section.backend != "serial":
        raise ValueError(f"devices.fingerprint.backend {section.backend!r}: the R30x driver needs 'serial'")
    if not section.port:
        raise ValueError("devices.fingerprint.port: required for the serial backend")
    options = _options(section.options)
    if options.reconnect_max_s < options.reconnect_initial_s:
        raise ValueError("devices.fingerprint.options.reconnect_max_s: below reconnect_initial_s")
    link = SerialLink(
        "fingerprint",
        section.port,
        baudrate=section.baudrate or DEFAULT_BAUDRATE,
        timeout_s=_READ_TIMEOUT_S,
        backoff=Backoff(options.reconnect_initial_s, options.reconnect_max_s),
        # A stalled adapter must not block a write for ever; pyserial turns this into an error.
        serial_options={"write_timeout": options.response_timeout_s},
    )
    client = R30xClient(
        link, options.address, options.password, response_timeout_s=options.response_timeout_s
    )
    return R30xFingerprintSensor(
        client,
        threshold=options.threshold,
        template_size=options.template_size,
        poll_interval_s=options.poll_interval_s,
    )


def _options(raw: dict[str, Any]) -> R30xOptions:
    try:
        return R30xOptions.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"devices.fingerprint.options.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            for err in exc.errors()
        )
        raise ValueError(problems) from None
