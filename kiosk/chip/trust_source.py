"""Where the kiosk's trust store comes from: the ``chip_trust`` dataset the hub syncs, plus the files a
technician imported on the kiosk (``python -m kiosk chip trust import``, kept in
``data_dir/chip-trust``). Both are read each time the store is built, so a bundle applied by the
agent is in force at the next build."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from config import Config
from kiosk.chip.trust import TrustStore
from kiosk.chip.trust_dataset import RECORD_FIELDS, add_records
from kiosk.reference_data import Dataset

if TYPE_CHECKING:
    from kiosk.store import Store

TECHNICIAN_FOLDER = "chip-trust"


def technician_folder(config_or_data_dir: Config | Path) -> Path:
    data_dir = config_or_data_dir.data_dir if isinstance(config_or_data_dir, Config) else config_or_data_dir
    return data_dir / TECHNICIAN_FOLDER


def load_trust(store: Store, config_or_data_dir: Config | Path) -> TrustStore:
    """The synced dataset first, then the technician's folder (whose master lists may chain to a
    synced CSCA). What cannot be used is listed in ``skipped``, never fatal: the dataset was checked
    when it was applied, and a bad imported file must not close the lane."""
    trust = TrustStore()
    _version, records = store.reference_data.rows(Dataset.CHIP_TRUST, RECORD_FIELDS)
    trust.skipped.extend(f"chip_trust {problem}" for problem in add_records(trust, records))
    folder = technician_folder(config_or_data_dir)
    if folder.exists():
        trust.add_files(folder)
    return trust


class TrustCache:
    """The trust store chips are read against, built once and built again only when the ``chip_trust``
    dataset in force or the technician's folder has changed: building parses every certificate, and
    the lane reads a chip per traveller."""

    def __init__(self, store: Store, config_or_data_dir: Config | Path) -> None:
        self.store = store
        self.folder = technician_folder(config_or_data_dir)
        self._data_dir = config_or_data_dir
        self._key: tuple[str | None, int | None] | None = None
        self._trust: TrustStore | None = None

    def current(self) -> TrustStore:
        version = self.store.reference_data.dataset_versions().get(Dataset.CHIP_TRUST.value)
        try:
            changed: int | None = self.folder.stat().st_mtime_ns
        except OSError:
            changed = None
        key = (version, changed)
        if self._trust is None or key != self._key:
            self._trust, self._key = load_trust(self.store, self._data_dir), key
        return self._trust
