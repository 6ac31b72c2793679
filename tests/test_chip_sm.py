"""Secure messaging and BAC against the ICAO 9303-11 Appendix D worked example, and both ends together."""

from __future__ import annotations

import pytest

from drivers.chip import bac
from drivers.chip.apdu import Command, Response
from drivers.chip.cipher import SessionCipher, adjust_parity, kdf, pad, unpad
from drivers.chip.errors import AccessDeniedError, SecureMessagingError
from drivers.chip.mrz_key import key_from_mrz, mrz_information
from drivers.chip.secure_messaging import SecureMessaging
from drivers.interfaces import ChipAccessKey

H = bytes.fromhex
EXAMPLE_KEY = ChipAccessKey("L898902C", "690806", "940623")
RND_IC = H("4608F91988702212")
RND_IFD = H("781723860C06C226")
K_IFD = H("0B795240CB7049B01C19B33E32804F0B")
K_IC = H("0B4F80323EB3191CB04970CB4052790B")
CHIP_ANSWER = H("46B9342A41396CD7386BF5803104D7CEDC122B9132139BAF2EEDC94EE178534F2F2D235D074D7449")


def _feed(*chunks: bytes):
    queue = list(chunks)
    return lambda n: queue.pop(0)[:n]


def test_mrz_information_and_document_keys() -> None:
    info = mrz_information(EXAMPLE_KEY)
    assert info == "L898902C<369080619406236"
    assert bac.key_seed(info) == H("239AB9CB282DAF66231DC5A4DF6BFBAE")
    keys = bac.document_keys(info)
    assert keys.ks_enc == H("AB94FDECF2674FDFB9B391F85D7F76F2")
    assert keys.ks_mac == H("7962D9ECE03D1ACD4C76089DCE131543")


def test_key_from_td3_and_td1_mrz() -> None:
    td3 = [
        "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
        "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
    ]
    assert key_from_mrz(td3) == ChipAccessKey("L898902C3", "740812", "120415")
    td1 = [
        "I<UTOD231458907<<<<<<<<<<<<<<<",
        "7408122F1204159UTO<<<<<<<<<<<6",
        "ERIKSSON<<ANNA<MARIA<<<<<<<<<<",
    ]
    assert key_from_mrz(td1) == ChipAccessKey("D23145890", "740812", "120415")


def test_worked_example_bac_and_protected_read_of_ef_com() -> None:
    """Appendix D.3 and D.4: mutual authentication, session keys, SSC, SELECT and READ BINARY."""
    sent: list[bytes] = []
    answers = [Response(RND_IC, 0x9000), Response(CHIP_ANSWER, 0x9000)]

    def transmit(command: Command) -> Response:
        sent.append(command.encode())
        return answers.pop(0)

    sm = bac.authenticate(transmit, "L898902C<369080619406236", rng=_feed(RND_IFD, K_IFD))
    assert sent[0] == H("0084000008")
    assert sent[1] == H(
        "008200002872C29C2371CC9BDB65B779B8E8D37B29ECC154AA56A8799FAE2F498F76ED92F25F1448EEA8AD90A728"
    )
    assert sm.cipher.ks_enc == H("979EC13B1CBFE9DCD01AB0FED307EAE5")
    assert sm.cipher.ks_mac == H("F1CB1F1FB5ADF208806B89DC579DC1F8")
    assert sm.ssc == 0x887022120C06C226

    select = sm.protect(Command(0x00, 0xA4, 0x02, 0x0C, H("011E")))
    assert select.encode() == H("0CA4020C158709016375432908C044F68E08BF8B92D635FF24F800")
    assert sm.unprotect(Response.decode(H("990290008E08FA855A5D4C50A8ED9000"))) == Response(b"", 0x9000)

    head = sm.protect(Command(0x00, 0xB0, 0x00, 0x00, ne=4))
    assert head.encode() == H("0CB000000D9701048E08ED6705417E96BA5500")
    got = sm.unprotect(Response.decode(H("8709019FF0EC34F9922651990290008E08AD55CC17140B2DED9000")))
    assert got == Response(H("60145F01"), 0x9000)

    rest = sm.protect(Command(0x00, 0xB0, 0x00, 0x04, ne=0x12))
    assert rest.encode() == H("0CB000040D9701128E082EA28A70F3C7B53500")
    got = sm.unprotect(
        Response.decode(
            H("871901FB9235F4E4037F2327DCC8964F1F9B8C30F42C8E2FFF224A990290008E08C8B2787EAEA07D749000")
        )
    )
    assert got.data == H("04303130365F36063034303030305C026175")
    assert sm.ssc == 0x887022120C06C22C


def test_chip_side_answers_the_worked_example() -> None:
    chip = bac.BacChip("L898902C<369080619406236", rng=_feed(RND_IC, K_IC))
    assert chip.get_challenge() == RND_IC
    sealed = H("72C29C2371CC9BDB65B779B8E8D37B29ECC154AA56A8799FAE2F498F76ED92F25F1448EEA8AD90A7")
    answer, session = chip.external_authenticate(sealed)
    assert answer == CHIP_ANSWER
    assert session.ssc == 0x887022120C06C226
    plain = session.unwrap(Command.decode(H("0CA4020C158709016375432908C044F68E08BF8B92D635FF24F800")))
    assert plain == Command(0x00, 0xA4, 0x02, 0x0C, H("011E"))
    assert session.wrap(Response(b"", 0x9000)).encode() == H("990290008E08FA855A5D4C50A8ED9000")


def test_wrong_mrz_is_access_denied() -> None:
    chip = bac.BacChip("L898902C<369080619406236")

    def transmit(command: Command) -> Response:
        if command.ins == bac.INS_GET_CHALLENGE:
            return Response(chip.get_challenge(), 0x9000)
        try:
            return Response(chip.external_authenticate(command.data)[0], 0x9000)
        except AccessDeniedError:
            return Response.status(0x6300)

    with pytest.raises(AccessDeniedError):
        bac.authenticate(transmit, "L898902C<369080619406237")


@pytest.mark.parametrize("algorithm", ["3DES", "AES"])
def test_reader_and_chip_sessions_agree_and_a_bad_mac_ends_the_session(algorithm: str) -> None:
    cipher = SessionCipher.derive(b"shared secret", algorithm)  # type: ignore[arg-type]
    reader, chip = SecureMessaging(cipher, 0), SecureMessaging(cipher, 0)
    command = Command(0x00, 0xB0, 0x00, 0x00, ne=0x300)
    protected = reader.protect(command)
    assert protected.extended and Command.decode(protected.encode()) == protected
    assert chip.unwrap(protected) == command
    payload = bytes(range(256)) * 3
    wrapped = chip.wrap(Response(payload, 0x9000))
    assert reader.unprotect(Response.decode(wrapped.encode())) == Response(payload, 0x9000)

    reader.protect(command)
    tampered = bytearray(chip.wrap(Response(b"abcd", 0x9000)).encode())
    tampered[-3] ^= 1
    with pytest.raises(SecureMessagingError):
        reader.unprotect(Response.decode(bytes(tampered)))
    with pytest.raises(SecureMessagingError):
        reader.protect(command)


def test_padding_and_kdf_basics() -> None:
    assert pad(b"\x01", 8) == H("0180000000000000")
    assert unpad(pad(b"", 16)) == b""
    assert adjust_parity(H("00FF")) == H("01FE")
    assert len(kdf(b"k", 1, "AES", 256)) == 32
