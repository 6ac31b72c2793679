"""The simulated world's test country-signing PKI: one test CSCA and Document Signer per issuing
country (:mod:`kiosk.chip.testpki`, marked TEST), made once per process in memory (EC P-256: a few
milliseconds each, never written to disk) and back-dated two years so that any simulated date near
today falls inside their validity. :func:`trust_records` is the ``chip_trust`` dataset a hub would
sync for them."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization

from kiosk.chip.countries import alpha2
from kiosk.chip.testpki import Signer, make_csca, make_ds
from kiosk.chip.trust import TrustStore
from kiosk.chip.trust_dataset import record

PKI_BACKDATE = timedelta(days=2 * 365)


@functools.cache
def country_pki(country: str) -> tuple[Signer, Signer]:
    """The process's test (CSCA, DS) of ``country`` (ISO 3166 alpha-2)."""
    now = datetime.now(UTC) - PKI_BACKDATE
    csca = make_csca(country, now=now)
    return csca, make_ds(csca, now=now)


def trust_records(issuing_states: Iterable[str]) -> list[dict[str, Any]]:
    """The ``chip_trust`` records of the test CSCAs of ``issuing_states`` (MRZ state codes)."""
    store = TrustStore()
    records = []
    for country in sorted({c for state in issuing_states if (c := alpha2(state)) is not None}):
        der = country_pki(country)[0].cert.public_bytes(serialization.Encoding.DER)
        records.append(record(store.add_der(der), der))
    return records
