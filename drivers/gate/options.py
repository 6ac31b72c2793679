"""The ``[devices.gate]`` sections: the in-process simulated gate, GPIO pins and a Modbus RTU IO module.

Validated when the configuration loads; each backend module's ``build`` describes its keys. Neither
gpiozero nor pymodbus is imported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drivers.gate.channels import REQUIRED_INPUTS, REQUIRED_OUTPUTS, ChannelMap, Door, Input, Output
from drivers.registry import BackendSection, register

# The layout of a typical 8-relay / 8-input board, used when the config names no addresses.
DEFAULT_COILS: Mapping[Output, int] = {
    Output.ENTRY_LOCK: 0,
    Output.EXIT_LOCK: 1,
    Output.LAMP_GREEN: 2,
    Output.LAMP_RED: 3,
    Output.BUZZER: 4,
}
DEFAULT_INPUTS: Mapping[Input, int] = {
    Input.ENTRY_BEAM: 0,
    Input.EXIT_BEAM: 1,
    Input.ENTRY_DOOR_CLOSED: 2,
    Input.EXIT_DOOR_CLOSED: 3,
    Input.LANE_PRESENCE: 4,
    Input.TAILGATE: 5,
    Input.EMERGENCY_RELEASE: 6,
}
MAX_READ_BITS = 2000


class GateOptions(BaseModel):
    """The option keys every gate backend shares (see each backend's ``build`` for the rest)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    outputs: dict[Output, int] = Field(default_factory=dict)
    inputs: dict[Input, int] = Field(default_factory=dict)
    active_low: list[Output | Input] = Field(default_factory=list)
    entry_unlock_energised: bool = True
    exit_unlock_energised: bool = False
    forced_grace_s: float = Field(1.0, ge=0, le=30)

    @model_validator(mode="after")
    def _consistent(self) -> GateOptions:
        missing = sorted((REQUIRED_OUTPUTS - self.outputs.keys()) | (REQUIRED_INPUTS - self.inputs.keys()))
        if missing:
            raise ValueError(f"required channel(s) not wired: {', '.join(missing)}")
        for kind, table in (("outputs", self.outputs), ("inputs", self.inputs)):
            if any(address < 0 for address in table.values()):
                raise ValueError(f"{kind}: addresses must be >= 0")
            if len(set(table.values())) != len(table):
                raise ValueError(f"{kind}: two channels share one address")
        unknown = [name for name in self.active_low if name not in self.outputs and name not in self.inputs]
        if unknown:
            raise ValueError(f"active_low names unwired channel(s): {', '.join(unknown)}")
        return self

    def channel_map(self) -> ChannelMap:
        return ChannelMap(
            outputs=dict(self.outputs),
            inputs=dict(self.inputs),
            active_low=frozenset(self.active_low),
            unlock_energised={Door.ENTRY: self.entry_unlock_energised, Door.EXIT: self.exit_unlock_energised},
        )


Pull = Literal["up", "down", "off"]


class GpioOptions(GateOptions):
    pull: Pull = "up"
    bounce_s: float = Field(0.02, ge=0, le=1)
    reconcile_s: float = Field(0.25, ge=0, le=10)

    @model_validator(mode="after")
    def _one_use_per_pin(self) -> GpioOptions:
        pins = [*self.outputs.values(), *self.inputs.values()]
        if len(set(pins)) != len(pins):
            raise ValueError("one pin is wired to two channels")
        return self


class ModbusOptions(GateOptions):
    outputs: dict[Output, int] = Field(default_factory=lambda: dict(DEFAULT_COILS))
    inputs: dict[Input, int] = Field(default_factory=lambda: dict(DEFAULT_INPUTS))
    unit: int = Field(1, ge=1, le=247)
    parity: Literal["N", "E", "O"] = "N"
    bytesize: Literal[7, 8] = 8
    stopbits: Literal[1, 2] = 1
    local_echo: bool = False
    poll_interval_s: float = Field(0.05, gt=0, le=5)
    response_timeout_s: float = Field(0.2, gt=0, le=5)
    failures_to_fail: int = Field(3, ge=1, le=100)
    coil_check_every: int = Field(10, ge=1, le=10_000)
    reconnect_initial_s: float = Field(0.2, gt=0, le=60)
    reconnect_max_s: float = Field(5.0, gt=0, le=600)

    @model_validator(mode="after")
    def _fits_the_protocol(self) -> ModbusOptions:
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("reconnect_max_s must be at least reconnect_initial_s")
        for kind, table in (("outputs", self.outputs), ("inputs", self.inputs)):
            # Each table is read in one request, whose count Modbus caps at 2000 bits.
            if max(table.values()) - min(table.values()) >= MAX_READ_BITS:
                raise ValueError(f"{kind}: addresses must lie within {MAX_READ_BITS} of each other")
        return self


@register("gate")
class SimulatedGateSection(BackendSection):
    """The in-process gate of the simulated lane (``drivers.simulated.lane``)."""

    backend: Literal["simulated"] = "simulated"
    simulated = True


@register("gate")
class GpioGateSection(BackendSection):
    """Relays and sensors on the Pi's GPIO header (BCM pin numbers); it has no port."""

    backend: Literal["gpio"] = "gpio"
    options: GpioOptions


@register("gate")
class ModbusGateSection(BackendSection):
    """An RS-485 Modbus RTU relay/IO module on a serial port."""

    backend: Literal["modbus"] = "modbus"
    port: str = Field(min_length=1)  # e.g. /dev/serial/by-id/usb-...-if00-port0
    baudrate: int = Field(9600, gt=0)
    options: ModbusOptions = ModbusOptions()
