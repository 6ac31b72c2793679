"""The maintenance PIN (issue 12, hole 8): a salted scrypt hash, 6+ digits, a lockout that escalates
across restarts and tells the hub, a way for technicians to make the hash, legacy SHA-256 refused."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from common.pinhash import MIN_DIGITS, PinHash, PinHashError, hash_pin
from config import Config, ConfigError, load_config
from kiosk.app import Kiosk, maintenance_pin
from kiosk.pinlock import DEMO_PIN, Lockout, PinLock, PinVerdict
from kiosk.store import Store

PIN = "246813"
ROOT = Path(__file__).resolve().parents[1]


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_hash_is_salted_scrypt_in_one_string():
    first, second = hash_pin(PIN), hash_pin(PIN)
    assert first.startswith("scrypt$16384$8$1$") and first != second  # a fresh salt each time
    parsed = PinHash.parse(first)
    assert parsed.matches(PIN) and not parsed.matches("246814")
    assert PinHash.parse(second).matches(PIN)


@pytest.mark.parametrize("pin", ["2468", "12345", "12345a", "1234567890123", "", "２４６８１３"])
def test_short_or_non_digit_pins_are_refused(pin):
    with pytest.raises(PinHashError, match=f"{MIN_DIGITS} to"):
        hash_pin(pin)


@pytest.mark.parametrize(
    "encoded",
    [
        hashlib.sha256(b"2468").hexdigest(),  # the old format
        "scrypt$16385$8$1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==",  # n not a power of two
        "scrypt$1048576$8$1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==",  # n too large for the kiosk
        "scrypt$16384$8$1$c2FsdA==$aGFzaGhhc2hoYXNoaGFzaA==",  # salt too short
    ],
)
def test_unusable_hashes_are_refused(encoded):
    with pytest.raises(PinHashError, match="pin-hash"):
        PinHash.parse(encoded)


def test_legacy_sha256_config_is_refused_with_how_to_rehash(tmp_path):
    file = tmp_path / "kiosk.toml"
    file.write_text(f'[ui]\nmaintenance_pin_sha256 = "{hashlib.sha256(b"2468").hexdigest()}"\n')
    with pytest.raises(ConfigError, match=r"maintenance_pin_sha256 is no longer accepted.*kiosk pin-hash"):
        load_config(file)
    file.write_text(f'[ui]\nmaintenance_pin_hash = "{hashlib.sha256(b"2468").hexdigest()}"\n')
    with pytest.raises(ConfigError, match="pin-hash"):
        load_config(file)
    file.write_text(f'[ui]\nmaintenance_pin_hash = "{hash_pin(PIN)}"\n')
    config = load_config(file)
    assert PinHash.parse(config.ui.maintenance_pin_hash).matches(PIN)
    assert config.masked()["ui"]["maintenance_pin_hash"] == "***"


def test_lockout_escalates_across_restarts_up_to_the_cap_and_alerts_the_hub(store: Store):
    clock = _Clock()
    expected = PinHash.parse(hash_pin(PIN))
    rule = Lockout(max_failures=3, first_s=60, max_s=300)

    def lock() -> PinLock:  # a fresh app each time, as after a restart: only the store remembers
        return PinLock(store, expected, rule, now=clock, training=lambda: False)

    lengths = []
    for _round in range(5):
        assert lock().attempt("111111").verdict is PinVerdict.WRONG
        assert lock().attempt("222222").failures_left == 1
        locked = lock().attempt("333333")
        assert locked.verdict is PinVerdict.LOCKED
        lengths.append(locked.locked_for_s)
        assert lock().attempt(PIN).verdict is PinVerdict.LOCKED  # even the right PIN
        clock.now += locked.locked_for_s + 1
    assert lengths == [60, 120, 240, 300, 300]
    assert lock().attempt(PIN).verdict is PinVerdict.OPEN
    # A success forgets the history: the next lockout is the first again.
    for pin in ("111111", "222222"):
        lock().attempt(pin)
    assert lock().attempt("333333").locked_for_s == 60

    events = store.outbox.pending(1000)
    alerts = [e.data for e in events if e.type == "alert"]
    assert [a["lockouts"] for a in alerts] == [1, 2, 3, 4, 5, 1]
    assert alerts[0] == {"alert": "maintenance_locked_out", "lockouts": 1, "locked_for_s": 60}
    text = json.dumps([e.data for e in events])
    assert not any(pin in text for pin in (PIN, "111111", "222222", "333333"))


def test_technician_makes_the_hash_from_stdin():
    made = subprocess.run(
        [sys.executable, "-m", "kiosk", "pin-hash"],
        input=PIN + "\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=True,
    )
    assert PIN not in made.stdout + made.stderr
    line = made.stdout.splitlines()[1]
    assert line.startswith('maintenance_pin_hash = "scrypt$')
    assert PinHash.parse(line.split('"')[1]).matches(PIN)
    short = subprocess.run(
        [sys.executable, "-m", "kiosk", "pin-hash"],
        input="2468\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert short.returncode == 2 and "6 to 12 digits" in short.stderr and not short.stdout


def test_simulated_kiosk_without_a_pin_accepts_the_six_digit_demo_pin(kiosk: Kiosk):
    assert len(DEMO_PIN) >= MIN_DIGITS
    assert maintenance_pin(kiosk, simulated=True).attempt(DEMO_PIN).verdict is PinVerdict.OPEN
    assert maintenance_pin(kiosk, simulated=False).attempt(DEMO_PIN).verdict is PinVerdict.DISABLED


def test_configured_pin_replaces_the_demo_pin(tmp_path):
    from kiosk.app import build_kiosk

    config = Config.model_validate({"base_dir": tmp_path, "ui": {"maintenance_pin_hash": hash_pin(PIN)}})
    built = build_kiosk(config)
    try:
        pins = maintenance_pin(built, simulated=True)
        assert pins.attempt(DEMO_PIN).verdict is PinVerdict.WRONG
        assert pins.attempt(PIN).verdict is PinVerdict.OPEN
    finally:
        built.close()
