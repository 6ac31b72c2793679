"""The kiosk's configuration: the schema (``schema``) and loading it (``load``).

Everything reads its settings from here; this package imports no kiosk code, and from the drivers
only their configuration sections (``drivers.registry``), so a driver never depends on the kiosk.
"""

from config.floors import SafetyFloorError
from config.load import (
    HUB_CONFIG_FILE,
    HUB_SETTABLE,
    ConfigError,
    check_hub_settings,
    load_config,
    with_hub_settings,
)
from config.schema import (
    DEVICES,
    AgentSection,
    Config,
    DevicesSection,
    DoorsSection,
    FaceSection,
    FingerprintPolicySection,
    FlowSection,
    SafetySection,
    SimulationSection,
    UiSection,
)

__all__ = [
    "DEVICES",
    "HUB_CONFIG_FILE",
    "HUB_SETTABLE",
    "AgentSection",
    "Config",
    "ConfigError",
    "DevicesSection",
    "DoorsSection",
    "FaceSection",
    "FingerprintPolicySection",
    "FlowSection",
    "SafetyFloorError",
    "SafetySection",
    "SimulationSection",
    "UiSection",
    "check_hub_settings",
    "load_config",
    "with_hub_settings",
]
