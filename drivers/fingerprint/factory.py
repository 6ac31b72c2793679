"""Turns the ``[devices.fingerprint]`` configuration section into a running R30x sensor driver."""

from __future__ import annotations

from common.backoff import Backoff
from drivers.fingerprint.client import R30xClient
from drivers.fingerprint.options import R30xSection
from drivers.fingerprint.sensor import R30xFingerprintSensor
from drivers.serial_link import SerialLink

# How long a read waits for bytes; an empty read also tells the parser the module went quiet.
_READ_TIMEOUT_S = 0.05


def build(section: R30xSection) -> R30xFingerprintSensor:
    """The R30x / AS608 sensor described by ``section`` (``backend = "serial"``).

    ``port`` is the serial device (a udev name such as ``/dev/fingerprint`` survives replugging);
    ``baudrate`` defaults to 57600, the modules' factory setting. ``options``
    (:class:`~drivers.fingerprint.options.R30xOptions`, validated when the configuration loaded):

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
    check.
    """
    options = section.options
    link = SerialLink(
        "fingerprint",
        section.port,
        baudrate=section.baudrate,
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
