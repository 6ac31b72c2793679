"""Which backends serve each device, and the configuration section each backend accepts.

Every device package registers its backends' sections in its ``options`` module (pydantic models,
``backend: Literal[...]``); the configuration assembles them into one discriminated union per
device, so a typo, a wrong type or an unknown backend is refused when the file loads, and a driver
factory receives a typed, already valid section. The dependency points from the configuration to
the drivers: nothing in ``drivers/`` knows the configuration file exists.

An ``options`` module imports no hardware library: loading a configuration must not load OpenCV,
gpiozero, pymodbus or pyscard.
"""

from __future__ import annotations

import importlib
import typing
from collections.abc import Callable
from typing import ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict

# Device (the key under [devices]) -> the module whose import registers its backends.
OPTION_MODULES = {
    "document_reader": "drivers.docreader.options",
    "camera": "drivers.camera.options",
    "fingerprint": "drivers.fingerprint.options",
    "gate": "drivers.gate.options",
    "chip": "drivers.chip.options",
}


class BackendSection(BaseModel):
    """One ``[devices.<device>]`` table for one backend; subclasses narrow ``backend`` to a Literal."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: str
    # Simulated hardware (in-process, or files played as a camera): a kiosk made only of such devices
    # may create its own fleet key and open maintenance without a PIN.
    simulated: ClassVar[bool] = False


S = TypeVar("S", bound=type[BackendSection])
_registry: dict[str, dict[str, type[BackendSection]]] = {device: {} for device in OPTION_MODULES}


def register(device: str) -> Callable[[S], S]:
    """Class decorator: ``model`` serves ``device`` for each name in its ``backend`` Literal."""

    def add(model: S) -> S:
        names = typing.get_args(model.model_fields["backend"].annotation)
        if not names:
            raise TypeError(f"{model.__name__}.backend must be a Literal of backend names")
        for name in names:
            known = _registry[device].setdefault(name, model)
            if known is not model:
                raise TypeError(f"devices.{device}: backend {name!r} registered twice")
        return model

    return add


def backends(device: str) -> dict[str, type[BackendSection]]:
    """The registered backends of ``device`` by name (importing its options module registers them)."""
    importlib.import_module(OPTION_MODULES[device])
    return dict(_registry[device])
