"""Loading the configuration file: clear errors, and the hub's fleet settings merged over it.

An invalid file stops the kiosk (exit code 2) with the file, the key and the problem named:
guessing what an operator meant is not acceptable at a border post.
"""

from __future__ import annotations

import json
import logging
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from config.floors import check_settings_floors
from config.schema import DEVICES, Config
from drivers.registry import backends

log = logging.getLogger(__name__)


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file, key and problem."""


# The settings the hub may set for a fleet through a signed ``config`` bundle: operating parameters
# only. Identity, paths, keys, devices, the broker and the face model stay with the technician's file.
HUB_CONFIG_FILE = "hub-config.json"
HUB_SETTABLE: dict[str, frozenset[str] | None] = {
    "flow": None,
    "doors": None,
    "fingerprint": None,
    "face": frozenset({"max_attempts", "operating_point"}),
    "ui": frozenset(
        {
            "language",
            "spoken_prompts",
            "inactivity_s",
            "inactivity_countdown_s",
            "feedback_s",
            "go_hold_s",
            "officer_hold_s",
            "help_hold_s",
        }
    ),
    "agent": frozenset(
        {
            "state_interval_s",
            "metrics_interval_s",
            "heartbeat_s",
            "outbox_retention_days",
            "command_freshness_s",
        }
    ),
}


def check_hub_settings(settings: object) -> dict[str, dict[str, Any]]:
    """``settings`` as ``{section: {key: value}}`` within :data:`HUB_SETTABLE`; ValueError otherwise."""
    if not isinstance(settings, dict):
        raise ValueError("hub settings must be an object of sections")
    for section, values in settings.items():
        if section not in HUB_SETTABLE:
            raise ValueError(f"section {section!r} cannot be set by the hub")
        if not isinstance(values, dict) or not values:
            raise ValueError(f"section {section!r} must be a non-empty object")
        allowed = HUB_SETTABLE[section]
        for key in values:
            if allowed is not None and key not in allowed:
                raise ValueError(f"key '{section}.{key}' cannot be set by the hub")
    return settings


def with_hub_settings(config: Config, settings: object, version: str) -> Config:
    """``config`` with the hub's settings merged over it; ValueError naming the key if they are invalid
    (:class:`config.floors.SafetyFloorError` when one goes past the file's ``[safety]`` ceilings)."""
    checked = check_hub_settings(settings)
    merged = config.model_dump(mode="json")
    for section, values in checked.items():
        merged[section] = {**merged.get(section, {}), **values}
    try:
        result = Config.model_validate(
            {**merged, "base_dir": config.base_dir, "hub_settings_version": version}
        )
    except ValidationError as exc:
        raise ValueError(describe(exc)) from None
    # After validation (types and ranges known good), and at every start too: a settings file written
    # before a ceiling was lowered, or edited by hand, is ignored like any other unusable one.
    check_settings_floors(checked, config.safety)
    return result


def _merge_hub_settings(config: Config) -> Config:
    path = config.data_dir / HUB_CONFIG_FILE
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return config
    except (OSError, ValueError) as exc:
        log.error("ignoring the hub's settings in %s: unreadable (%s)", path, exc)
        return config
    try:
        return with_hub_settings(config, stored["settings"], str(stored["version"]))
    except (KeyError, TypeError, ValueError) as exc:
        # Valid when the agent wrote it, so only a software change can get here: the lane must still
        # start, on the technician's settings, and say so.
        log.error("ignoring the hub's settings in %s: %s", path, exc)
        return config


def load_config(path: Path | None) -> Config:
    """Load and validate ``path`` (``None``: the defaults, resolved against the working dir), then merge
    the hub's settings bundle (``data_dir/hub-config.json``) over it when the agent has applied one."""
    if path is None:
        return _merge_hub_settings(Config(base_dir=Path.cwd()))
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    if "base_dir" in raw:
        raise ConfigError(f"{path}: key 'base_dir': not a configuration key")
    if "hub_settings_version" in raw:
        raise ConfigError(f"{path}: key 'hub_settings_version': not a configuration key")
    try:
        config = Config.model_validate({**raw, "base_dir": path.parent})
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe(exc)}") from None
    return _merge_hub_settings(config)


def describe(exc: ValidationError) -> str:
    """Each problem as ``key 'a.b.c': message``, keys spelled as in the file."""
    return "; ".join(f"key '{'.'.join(_key(err))}': {err['msg']}" for err in exc.errors())


def _key(err: Any) -> list[str]:
    loc = [str(part) for part in err["loc"]]
    # A device's union puts the chosen backend in the location, where the file has no such level.
    if len(loc) > 2 and loc[0] == "devices" and loc[1] in DEVICES and loc[2] in backends(loc[1]):
        del loc[2]
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc.append("backend")
    return loc
