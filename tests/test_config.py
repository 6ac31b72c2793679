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
    masked = Config(devices={"gate": {"options": {"password": "hunter2", "key_file": "/k"}}}).masked()
    assert masked["devices"]["gate"]["options"] == {"password": "***", "key_file": "/k"}
