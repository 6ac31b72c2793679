"""PACE Generic Mapping against the ICAO 9303-11 Appendix G.1 worked example, and both ends together."""

from __future__ import annotations

import pytest

from drivers.chip import atr, pace, tlv
from drivers.chip.apdu import Command, Response
from drivers.chip.card import SimulatedPassport
from drivers.chip.errors import AccessDeniedError
from drivers.chip.mrz_key import mrz_information
from drivers.chip.reading import read_chip
from drivers.interfaces import ChipAccessKey
from tests.chip_lds import SPECIMEN_KEY, lds_files

H = bytes.fromhex
G1_KEY = ChipAccessKey("T22000129", "640812", "101031")
G1_CARD_ACCESS = H("31143012060A04007F0007020204020202010202010D")
SK_MAP_IFD = 0x7F4EF07B9EA82FD78AD689B38D0BC78CF21F249D953BC46F4C6E19259C010F99
SK_DH_IFD = 0xA73FB703AC1436A18E0CFA5ABB3F7BEC7A070E7A6788486BEE230C4A22762595
PK_MAP_IFD = H(
    "047ACF3EFC982EC45565A4B155129EFBC74650DCBFA6362D896FC70262E0C2CC5E"
    "544552DCB6725218799115B55C9BAA6D9F6BC3A9618E70C25AF71777A9C4922D"
)
PK_MAP_IC = H(
    "04824FBA91C9CBE26BEF53A0EBE7342A3BF178CEA9F45DE0B70AA601651FBA3F57"
    "30D8C879AAA9C9F73991E61B58F4D52EB87A0A0C709A49DC63719363CCD13C54"
)
PK_DH_IFD = H(
    "042DB7A64C0355044EC9DF190514C625CBA2CEA48754887122F3A5EF0D5EDD301C"
    "3556F3B3B186DF10B857B58F6A7EB80F20BA5DC7BE1D43D9BF850149FBB36462"
)
PK_DH_IC = H(
    "049E880F842905B8B3181F7AF7CAA9F0EFB743847F44A306D2D28C1D9EC65DF6DB"
    "7764B22277A2EDDC3C265A9F018F9CB852E111B768B326904B59A0193776F094"
)
TRANSCRIPT = [
    ("0022C1A412800A04007F0007020204020283010184010D", "9000"),
    ("10860000027C0000", "7C12801095A3A016522EE98D01E76CB6B98B42C39000"),
    ("10860000457C438141" + PK_MAP_IFD.hex() + "00", "7C438241" + PK_MAP_IC.hex() + "9000"),
    ("10860000457C438341" + PK_DH_IFD.hex() + "00", "7C438441" + PK_DH_IC.hex() + "9000"),
    ("008600000C7C0A8508C2B0BD78D94BA86600", "7C0A86083ABB9674BCE93C089000"),
]


def _scalars(*values: int):
    """An rng whose draws make ``pace`` pick exactly these private keys (it maps bytes to [1, q-1])."""
    queue = [(v - 1).to_bytes(40, "big") for v in values]
    return lambda n: queue.pop(0)[:n].rjust(n, b"\x00")


def test_card_access_offers_and_password_key() -> None:
    (offer,) = pace.supported_offers(G1_CARD_ACCESS)
    assert offer == pace.PaceInfo.of("AES", 128, 13)
    assert offer.card_access() == G1_CARD_ACCESS
    assert mrz_information(G1_KEY) == "T22000129364081251010318"
    assert pace.password_key(mrz_information(G1_KEY), offer) == H("89DED1B26624EC1E634C1989302849DD")


def test_worked_example_reader_side_byte_for_byte() -> None:
    script = [(H(c), Response.decode(H(r))) for c, r in TRANSCRIPT]

    def transmit(command: Command) -> Response:
        expected, answer = script.pop(0)
        assert command.encode().hex().upper() == expected.hex().upper()
        return answer

    (offer,) = pace.supported_offers(G1_CARD_ACCESS)
    sm = pace.authenticate(transmit, offer, mrz_information(G1_KEY), rng=_scalars(SK_MAP_IFD, SK_DH_IFD))
    assert not script
    assert sm.cipher.ks_enc == H("F5F0E35C0D7161EE6724EE513A0D9A7F")
    assert sm.cipher.ks_mac == H("FE251C7858B356B24514B3BD5F4297D1")
    assert sm.ssc == 0
    # The first protected command of the session: SELECT of the eMRTD application, AES SM.
    select = sm.protect(Command(0x00, 0xA4, 0x04, 0x0C, H("A0000002471001")))
    assert select.encode() == H("0CA4040C1D871101752F676B09FAC86A87D632749A49C7CC8E08C18BA1FCE707BD9F00")
    assert sm.unprotect(Response.decode(H("990290008E08BEA7B381C494A0799000"))).ok


def test_parsing_skips_what_we_do_not_run() -> None:
    dh_gm = tlv.encode(0x30, H("060A04007F00070202040102") + H("020102") + H("02010D"))  # DH, not ECDH
    no_param = tlv.encode(0x30, H("060A04007F00070202040202") + H("020102"))
    ours = pace.PaceInfo.of("3DES", 128, 12)
    card_access = tlv.encode(0x31, dh_gm + no_param + tlv.unwrap(ours.card_access(), 0x31))
    assert pace.supported_offers(card_access) == [ours]
    with pytest.raises(ValueError):
        pace.supported_offers(b"\x31\x05\x30")


@pytest.mark.parametrize(
    ("algorithm", "bits", "parameter_id"),
    [
        ("AES", 128, 13),
        ("AES", 128, 12),
        ("3DES", 128, 13),
        ("3DES", 128, 12),
        ("AES", 256, 16),
        ("AES", 192, 15),
    ],
)
def test_both_ends_agree(algorithm: str, bits: int, parameter_id: int) -> None:
    contents = lds_files(dg2_size=3_000)
    card_access = pace.PaceInfo.of(algorithm, bits, parameter_id).card_access()  # type: ignore[arg-type]
    card = SimulatedPassport({**contents, "CardAccess": card_access})
    session, _ = read_chip(card.process, SPECIMEN_KEY, ["COM", "DG1", "DG2", "SOD"])
    assert session.access == "PACE"
    assert dict(session.files) == contents


def test_wrong_password_is_refused_and_unknown_variants_fall_back_to_bac() -> None:
    contents = lds_files(dg2_size=100)
    card = SimulatedPassport({**contents, "CardAccess": pace.PaceInfo.of("AES", 128, 13).card_access()})
    wrong = ChipAccessKey("L898902C3", "740812", "120416")
    with pytest.raises(AccessDeniedError):
        read_chip(card.process, wrong, ["DG1"])
    # A chip whose EF.CardAccess offers only what we do not speak is read with BAC.
    dh_only = tlv.encode(0x31, tlv.encode(0x30, H("060A04007F00070202040102020102020100")))
    card = SimulatedPassport({**contents, "CardAccess": dh_only})
    assert read_chip(card.process, SPECIMEN_KEY, ["DG1"])[0].access == "BAC"


def test_atr_extended_length_capability() -> None:
    assert atr.supports_extended_length(atr.build(atr.PASSPORT_HISTORICAL))
    assert not atr.supports_extended_length(atr.build(bytes((0x80, 0x73, 0xA0, 0x21, 0x80))))
    assert not atr.supports_extended_length(H("3B8F8001804F0CA000000306030001000000006A"))  # a storage card
