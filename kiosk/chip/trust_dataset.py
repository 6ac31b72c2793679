"""The ``chip_trust`` reference dataset: the passive-authentication trust store as records the hub
signs and the kiosk checks, one record per DER object (a CSCA certificate, an ICAO master list or a
CRL)::

    {"kind": "csca" | "master_list" | "crl", "der": base64 DER, "sha256": hex of the DER,
     "subject": RFC 4514 name, "country": "UT" | null, "not_after": "YYYY-MM-DDTHH:MM:SSZ" | null}

``subject``/``country``/``not_after`` describe the CSCA, the master list's signer or the CRL's issuer
(``not_after`` is the CRL's next update); they are there for the hub's reports and are checked against
the DER, so they cannot say anything the object does not.

Each object goes through :meth:`TrustStore.add_der`, the very check ``python -m kiosk chip trust
import`` applies to a technician's file, in a fixed order (CSCAs, then master lists, whose signers
must chain to a CSCA, then CRLs), so the dataset is accepted or refused on its own, whatever the
technician's folder holds.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kiosk.chip.trust import CRL, CSCA, MASTER_LIST, TrustError, TrustItem, TrustStore, der_objects, kind_of

KINDS = (CSCA, MASTER_LIST, CRL)  # also the order records are added in
RECORD_FIELDS = ("kind", "der", "sha256", "subject", "country", "not_after")
NOT_AFTER_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
NOT_AFTER_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"


def _not_after(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime(NOT_AFTER_FORMAT)


def record(item: TrustItem, der: bytes) -> dict[str, Any]:
    """The dataset record of one DER object already accepted by a trust store as ``item``."""
    return {
        "kind": item.kind,
        "der": base64.b64encode(der).decode("ascii"),
        "sha256": item.sha256,
        "subject": item.subject,
        "country": item.country,
        "not_after": _not_after(item.not_after),
    }


def records_from_files(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Hub side: the records of the CSCA certificates (DER or PEM), master lists and CRLs in
    ``paths`` (files, or folders read recursively), each checked as the kiosk will check it. Raises
    :class:`TrustError` naming the first file refused: the hub must not sign what kiosks refuse."""
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path])
    objects: list[tuple[Path, bytes]] = []
    for path in files:
        try:
            objects.extend((path, der) for der in der_objects(path.read_bytes()))
        except ValueError as exc:  # a broken PEM block
            raise TrustError(f"{path}: {exc}") from None
    objects.sort(key=lambda found: KINDS.index(kind_of(found[1])))
    store = TrustStore()
    records: dict[str, dict[str, Any]] = {}  # by sha256: the same object in two files is one record
    for path, der in objects:
        try:
            item = store.add_der(der)
        except ValueError as exc:
            raise TrustError(f"{path}: {' '.join(str(exc).split())}") from None
        records[item.sha256] = record(item, der)
    return list(records.values())


def add_records(store: TrustStore, records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Add the dataset's records to ``store`` (CSCAs, then master lists, then CRLs); returns one
    problem per bad record ("record N: why"). A record whose object is good but whose summary is
    wrong is still added: any problem refuses the whole dataset, so that store is thrown away."""
    problems: list[str] = []
    order = sorted(range(len(records)), key=lambda i: _rank(records[i].get("kind")))
    for index in order:
        problem = _add_record(store, records[index])
        if problem is not None:
            problems.append(f"record {index}: {problem}")
    return problems


def _rank(kind: object) -> int:
    return KINDS.index(kind) if kind in KINDS else len(KINDS)


def _add_record(store: TrustStore, stated: Mapping[str, Any]) -> str | None:
    try:
        der = base64.b64decode(str(stated.get("der")), validate=True)
    except (binascii.Error, ValueError):
        return "der is not base64"
    if der_objects(der) != [der]:
        return "der holds PEM, not DER"
    actual = kind_of(der)
    if actual != stated.get("kind"):
        # Checked before adding: a CRL declared a CSCA must not slip into the store either way.
        what = "neither a certificate nor a CRL" if actual == MASTER_LIST else f"a {actual}"
        return f"kind {stated.get('kind')!r} but the object is {what}"
    try:
        item = store.add_der(der)
    except ValueError as exc:  # TrustError, and cryptography's lazy parse errors
        return " ".join(str(exc).split())
    actual = record(item, der)
    wrong = [name for name in RECORD_FIELDS if stated.get(name) != actual[name]]
    if wrong:
        return f"{', '.join(wrong)} do not describe the object (it says {[actual[n] for n in wrong]})"
    return None
