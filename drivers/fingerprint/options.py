"""The ``[devices.fingerprint]`` sections: the in-process simulated sensor and R30x / AS608 modules."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drivers.fingerprint.client import DEFAULT_RESPONSE_TIMEOUT_S
from drivers.fingerprint.commands import DEFAULT_PASSWORD, TEMPLATE_SIZE
from drivers.fingerprint.protocol import DEFAULT_ADDRESS, MAX_TRANSFER
from drivers.fingerprint.sensor import DEFAULT_POLL_INTERVAL_S, DEFAULT_THRESHOLD
from drivers.registry import BackendSection, register


class R30xOptions(BaseModel):
    """``[devices.fingerprint.options]``, each key described at ``drivers.fingerprint.factory.build``."""

    # strict: `threshold = "high"` or `address = true` is a mistake, not a number.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    address: int = Field(DEFAULT_ADDRESS, ge=0, le=0xFFFFFFFF)
    password: int = Field(DEFAULT_PASSWORD, ge=0, le=0xFFFFFFFF)
    threshold: int = Field(DEFAULT_THRESHOLD, ge=0, le=0xFFFF)
    response_timeout_s: float = Field(DEFAULT_RESPONSE_TIMEOUT_S, gt=0, le=30)
    poll_interval_s: float = Field(DEFAULT_POLL_INTERVAL_S, gt=0, le=5)
    template_size: int = Field(TEMPLATE_SIZE, ge=1, le=MAX_TRANSFER)
    reconnect_initial_s: float = Field(0.2, gt=0, le=60)
    reconnect_max_s: float = Field(5.0, gt=0, le=600)

    @model_validator(mode="after")
    def _backoff_order(self) -> R30xOptions:
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("reconnect_max_s must be at least reconnect_initial_s")
        return self


@register("fingerprint")
class SimulatedFingerprintSection(BackendSection):
    """The in-process sensor of the simulated lane (``drivers.simulated.lane``)."""

    backend: Literal["simulated"] = "simulated"
    simulated = True


@register("fingerprint")
class R30xSection(BackendSection):
    """A ZhianTec R30x / AS608 module on a serial port (``backend = "serial"``)."""

    backend: Literal["serial"] = "serial"
    port: str = Field(min_length=1)  # a udev name such as /dev/fingerprint survives replugging
    baudrate: int = Field(57600, gt=0)  # the modules' factory setting
    options: R30xOptions = R30xOptions()
