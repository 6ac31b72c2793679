from __future__ import annotations

from pathlib import Path

import pytest

from config import Config, ConfigError, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kiosk.toml"
    path.write_text(text)
    return path


def test_empty_file_gives_simulated_defaults(tmp_path):
    config = load_config(write(tmp_path, ""))
    assert config.simulated
    assert config.store_path == tmp_path / "var" / "gerbang.sqlite3"
    assert config.fleet_key_path == tmp_path / "var" / "keys" / "fleet.key"


def test_relative_paths_resolve_against_the_file_and_absolute_ones_stay(tmp_path):
    config = load_config(
        write(tmp_path, '[kiosk]\ndata_dir = "/srv/gerbang"\n[store]\npath = "db/k.sqlite3"\n')
    )
    assert config.store_path == Path("/srv/gerbang/db/k.sqlite3")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[flow]\nface_timeout_s = -1\n", "key 'flow.face_timeout_s'"),
        ("[flow]\nface_timeout_s = 'soon'\n", "key 'flow.face_timeout_s'"),
        ("[kiosk]\nid = 'Has Spaces'\n", "key 'kiosk.id'"),
        ("[devices.camera]\nbackend = 'webcam9000'\n", "key 'devices.camera.backend'"),
        ("[flow]\nface_timout_s = 3\n", "key 'flow.face_timout_s'"),  # typo: unknown keys are errors
        ("[nonsense]\n", "key 'nonsense'"),
        ("[flow\n", "not valid TOML"),
        ("base_dir = '/'\n", "key 'base_dir'"),
    ],
)
def test_invalid_files_name_the_file_and_key(tmp_path, text, needle):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and needle in str(err.value)


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "absent.toml")


def test_version_changes_with_content(tmp_path):
    a = load_config(write(tmp_path, "[flow]\nface_timeout_s = 10\n"))
    b = load_config(write(tmp_path, "[flow]\nface_timeout_s = 11\n"))
    assert a.version() != b.version() and a.version() == a.version()


def test_masked_hides_secrets_but_not_file_paths():
    fingerprint = {"backend": "serial", "port": "/dev/x", "options": {"password": 1234}}
    masked = Config(
        devices={"fingerprint": fingerprint}, agent={"broker": "mqtts://h:8883", "password_file": "/k"}
    ).masked()
    assert masked["devices"]["fingerprint"]["options"]["password"] == "***"
    assert masked["agent"]["password_file"] == "/k"


# --- device sections: each backend's own model, refused when the file loads -------------------------

GPIO_WIRING = (
    "[devices.gate.options]\noutputs = { entry_lock = 17, exit_lock = 27 }\n"
    "inputs = { entry_beam = 5, exit_beam = 6 }\n"
)


@pytest.mark.parametrize(
    ("text", "backend"),
    [
        ("[devices.document_reader]\nbackend = 'serial'\nport = '/dev/ttyUSB0'\n", "serial"),
        ("[devices.camera]\nbackend = 'file'\n[devices.camera.options]\nsource = 'frames'\n", "file"),
        ("[devices.camera]\nbackend = 'v4l2'\nport = '/dev/video0'\n", "v4l2"),
        ("[devices.camera]\nbackend = 'picamera2'\n", "picamera2"),
        ("[devices.fingerprint]\nbackend = 'serial'\nport = '/dev/fingerprint'\n", "serial"),
        ("[devices.gate]\nbackend = 'gpio'\n" + GPIO_WIRING, "gpio"),
        ("[devices.gate]\nbackend = 'modbus'\nport = '/dev/ttyUSB1'\n", "modbus"),
        ("[devices.gate]\n", "simulated"),  # a table without a backend is the simulated device
    ],
)
def test_each_backend_loads_as_its_own_typed_section(tmp_path, text, backend):
    config = load_config(write(tmp_path, text))
    device = text.split("]")[0].removeprefix("[devices.")
    section = getattr(config.devices, device)
    assert section.backend == backend and type(section).__module__.startswith("drivers.")
    assert config.simulated is (backend in ("simulated", "file"))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        # unknown backends, per device
        ("[devices.document_reader]\nbackend = 'usb'\n", "key 'devices.document_reader.backend'"),
        ("[devices.fingerprint]\nbackend = 'gpio'\n", "key 'devices.fingerprint.backend'"),
        ("[devices.gate]\nbackend = 'serial'\n", "key 'devices.gate.backend'"),
        # document reader
        ("[devices.document_reader]\nbackend = 'serial'\n", "key 'devices.document_reader.port'"),
        (
            "[devices.document_reader]\nbackend = 'serial'\nport = 'p'\n[devices.document_reader.options]\n"
            "framming = 'cr'\n",
            "key 'devices.document_reader.options.framming'",
        ),
        (
            "[devices.document_reader]\nbackend = 'serial'\nport = 'p'\n[devices.document_reader.options]\n"
            "idle_ms = true\n",
            "key 'devices.document_reader.options.idle_ms'",
        ),
        ("[devices.document_reader]\nport = '/dev/x'\n", "key 'devices.document_reader.port'"),
        # camera
        ("[devices.camera]\nbackend = 'file'\n", "key 'devices.camera.options'"),
        ("[devices.camera]\nbackend = 'v4l2'\n[devices.camera.options]\nbogus = 1\n", "options.bogus'"),
        ("[devices.camera]\nbackend = 'v4l2'\n[devices.camera.options]\nfps = -5\n", "options.fps'"),
        ("[devices.camera]\nbackend = 'v4l2'\n[devices.camera.options]\nfourcc = 'MJPEG'\n", "fourcc'"),
        ("[devices.camera]\nbackend = 'v4l2'\nbaudrate = 9600\n", "key 'devices.camera.baudrate'"),
        ("[devices.camera]\nbackend = 'picamera2'\nport = '/dev/video0'\n", "key 'devices.camera.port'"),
        (
            "[devices.camera]\nbackend = 'picamera2'\n[devices.camera.options]\nstall_timeout_ms = 5\n",
            "key 'devices.camera.options.stall_timeout_ms'",
        ),
        # fingerprint
        ("[devices.fingerprint]\nbackend = 'serial'\n", "key 'devices.fingerprint.port'"),
        (
            "[devices.fingerprint]\nbackend = 'serial'\nport = 'p'\n[devices.fingerprint.options]\n"
            "treshold = 60\n",
            "key 'devices.fingerprint.options.treshold'",
        ),
        (
            "[devices.fingerprint]\nbackend = 'serial'\nport = 'p'\n[devices.fingerprint.options]\n"
            "threshold = 'high'\n",
            "key 'devices.fingerprint.options.threshold'",
        ),
        (
            "[devices.fingerprint]\nbackend = 'serial'\nport = 'p'\n[devices.fingerprint.options]\n"
            "reconnect_max_s = 0.01\n",
            "reconnect_max_s",
        ),
        # gate
        ("[devices.gate]\nbackend = 'gpio'\n", "key 'devices.gate.options'"),
        ("[devices.gate]\nbackend = 'gpio'\nport = '/dev/x'\n" + GPIO_WIRING, "key 'devices.gate.port'"),
        ("[devices.gate]\nbackend = 'gpio'\n" + GPIO_WIRING + "pull = 'sideways'\n", "options.pull'"),
        ("[devices.gate]\nbackend = 'modbus'\n", "key 'devices.gate.port'"),
        (
            "[devices.gate]\nbackend = 'modbus'\nport = 'p'\n[devices.gate.options]\nunit = 300\n",
            "key 'devices.gate.options.unit'",
        ),
        (
            "[devices.gate]\nbackend = 'modbus'\nport = 'p'\n[devices.gate.options]\n"
            "outputs = { entry_lock = 0, exit_lock = 2500 }\n",
            "within 2000",
        ),
        (
            "[devices.gate]\nbackend = 'modbus'\nport = 'p'\n[devices.gate.options]\n"
            "reconnect_max_s = 0.01\n",
            "reconnect_max_s",
        ),
    ],
)
def test_a_bad_device_section_is_refused_when_the_file_loads(tmp_path, text, needle):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and needle in str(err.value)


def test_a_refused_device_option_names_the_key_never_the_value(tmp_path):
    text = (
        "[devices.fingerprint]\nbackend = 'serial'\nport = 'p'\n[devices.fingerprint.options]\n"
        "password = -5\n"
    )
    with pytest.raises(ConfigError, match=r"devices\.fingerprint\.options\.password") as err:
        load_config(write(tmp_path, text))
    assert "-5" not in str(err.value)  # the password is one of the values
