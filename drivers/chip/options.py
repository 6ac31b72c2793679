"""The ``[devices.chip]`` sections: a PC/SC contactless reader ("pcsc"), the simulated chip in this
process ("simulated", no system services), or the simulator on the vpcd virtual reader ("vpcd")."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drivers.chip.reading import DEFAULT_EXTENDED_READ
from drivers.chip.vpcd import DEFAULT_PORT
from drivers.registry import BackendSection, register

VPCD_READERS = {35963: "Virtual PCD 00 00", 35964: "Virtual PCD 00 01"}


class PcscOptions(BaseModel):
    """``[devices.chip.options]``, each key described at ``drivers.chip.factory.build``."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    extended_length: Literal["auto", "on", "off"] = "auto"
    extended_read_size: int = Field(DEFAULT_EXTENDED_READ, ge=0x20, le=0xFF00)
    short_ids: bool = True
    reconnect_initial_s: float = Field(0.2, gt=0, le=60)
    reconnect_max_s: float = Field(5.0, gt=0, le=600)

    @model_validator(mode="after")
    def _backoff_order(self) -> PcscOptions:
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("reconnect_max_s must be at least reconnect_initial_s")
        return self


@register("chip")
class SimulatedChipSection(BackendSection):
    """The simulated lane's chip reader: its passports answer in this process (no pcscd, no vpcd)."""

    backend: Literal["simulated"] = "simulated"
    simulated = True


@register("chip")
class VpcdChipSection(BackendSection):
    """The simulated chip (``python -m drivers simulate chip``) on a vpcd virtual reader, read over PC/SC."""

    backend: Literal["vpcd"] = "vpcd"
    simulated = True
    vpcd_port: Literal[35963, 35964] = DEFAULT_PORT

    @property
    def reader(self) -> str:
        return VPCD_READERS[self.vpcd_port]


@register("chip")
class PcscChipSection(BackendSection):
    """A PC/SC contactless reader through pcscd (``backend = "pcsc"``)."""

    backend: Literal["pcsc"] = "pcsc"
    # The reader's name as pcscd lists it (`pcsc_scan`), or its beginning; unset: the first reader.
    reader: str | None = Field(None, min_length=1)
    options: PcscOptions = PcscOptions()
