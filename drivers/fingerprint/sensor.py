"""The gate's :class:`~drivers.interfaces.FingerprintSensor` on an R30x / AS608 module: 1:1 verify.

The traveller's finger goes into character buffer 1, the enrolled reference template into buffer 2,
and the module compares the two. Nothing biometric is kept, written or logged on the host: the
reference lives only in the caller's object and in transit, the live characteristics never leave
the module, and the next verify overwrites both module buffers.
"""

from __future__ import annotations

import logging
import time

from drivers.fingerprint.client import R30xClient
from drivers.fingerprint.commands import TEMPLATE_SIZE
from drivers.fingerprint.errors import PoorCaptureError
from drivers.interfaces import FingerprintResult, Health

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 50
DEFAULT_POLL_INTERVAL_S = 0.05
LIVE_BUFFER = 1
REFERENCE_BUFFER = 2


class R30xFingerprintSensor:
    name = "fingerprint"

    def __init__(
        self,
        client: R30xClient,
        *,
        threshold: int = DEFAULT_THRESHOLD,
        template_size: int = TEMPLATE_SIZE,
        poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
    ) -> None:
        self.client = client
        self.threshold = threshold
        self.template_size = template_size
        self.poll_interval_s = poll_interval_s

    def verify(self, reference_template: bytes, timeout_s: float) -> FingerprintResult | None:
        """Wait up to ``timeout_s`` for a usable finger image, then compare it with the reference.

        ``None`` when no finger (or only unusable images of one) arrived in time. Once a finger is
        captured the comparison is finished even if that runs past ``timeout_s``: each of its
        steps is bounded by the client's response timeout. Raises ``ValueError`` for a reference
        of the wrong size (the module cannot tell a truncated template from a poor one) and
        :class:`~drivers.interfaces.DeviceError` when the sensor fails.
        """
        if len(reference_template) != self.template_size:
            raise ValueError(
                f"reference template has {len(reference_template)} bytes; "
                f"the sensor takes {self.template_size}"
            )
        if not self._capture(timeout_s):
            return None
        self.client.down_char(REFERENCE_BUFFER, reference_template)
        score = self.client.match()
        result = FingerprintResult(matched=score >= self.threshold, score=score)
        log.debug("fingerprint compared: matched=%s", result.matched)
        return result

    def health(self) -> Health:
        return self.client.health()

    def close(self) -> None:
        self.client.close()

    def _capture(self, timeout_s: float) -> bool:
        """A usable image's characteristics in the live buffer, or ``False`` at the deadline."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        unusable = 0
        while True:
            try:
                if self.client.gen_img():
                    self.client.img2tz(LIVE_BUFFER)
                    return True
            except PoorCaptureError as exc:
                unusable += 1
                log.debug("fingerprint image unusable (code 0x%02X); capturing again", exc.code)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if unusable:
                    log.info("no usable fingerprint image in time (%d unusable)", unusable)
                return False
            time.sleep(min(self.poll_interval_s, remaining))
