"""The reader's side of an ePassport read, over any APDU transport: access control, then the files.

PACE when EF.CardAccess offers a variant we speak, BAC otherwise (ICAO 9303-11 §4.2). Files are
read in chunks after an 8-byte head that gives their length (the outer TLV header), selected by
short EF id in the first READ BINARY when the chip accepts it (one APDU fewer per file), else by
SELECT with the file id. Offsets past 32 KiB use the odd READ BINARY (B1) with an offset object.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from drivers.chip import bac, files, pace, tlv
from drivers.chip.apdu import SW_END_OF_FILE, SW_FILE_NOT_FOUND, SW_OK, Command, Response
from drivers.chip.errors import ChipError, StatusError
from drivers.chip.mrz_key import mrz_information
from drivers.chip.secure_messaging import SHORT_PLAIN_MAX_NE, SecureMessaging
from drivers.interfaces import ChipAccessKey, ChipSession

RawTransmit = Callable[[bytes], bytes]
HEAD_SIZE = 8  # covers the outer TLV header of any LDS file (tag ≤ 2 bytes, length ≤ 5 bytes)
MAX_SHORT_OFFSET = 0x7FFF
DO_OFFSET = 0x54
DO_DISCRETIONARY = 0x53
ODD_WRAPPING = 4  # DO'53' header for up to 64 KiB of data
INS_READ_BINARY = 0xB0
INS_READ_BINARY_ODD = 0xB1
INS_SELECT = 0xA4
INS_INTERNAL_AUTHENTICATE = 0x88
DEFAULT_EXTENDED_READ = 0x1000  # what common ePassport chips buffer; configurable per reader


@dataclass
class Channel:
    """Sends commands, through secure messaging once access control set it up, and counts the cost."""

    raw: RawTransmit
    sm: SecureMessaging | None = None
    apdus: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0

    def send(self, command: Command) -> Response:
        if self.sm is not None:
            command = self.sm.protect(command)
        encoded = command.encode()
        answer = self.raw(encoded)
        self.apdus += 1
        self.bytes_sent += len(encoded)
        self.bytes_received += len(answer)
        try:
            response = Response.decode(answer)
        except ValueError as exc:
            raise ChipError(f"malformed response: {exc}") from None
        return self.sm.unprotect(response) if self.sm is not None else response


@dataclass
class ChipReading:
    """One card session: open it with an access key, then read files and ask for AA signatures."""

    channel: Channel
    extended_length: bool = False
    extended_read_size: int = DEFAULT_EXTENDED_READ
    short_ids: bool = True
    rng: Callable[[int], bytes] = os.urandom
    access: str = ""
    file_s: dict[str, float] = field(default_factory=dict)

    @property
    def chunk(self) -> int:
        return self.extended_read_size if self.extended_length else SHORT_PLAIN_MAX_NE

    def open(self, key: ChipAccessKey) -> str:
        """PACE if EF.CardAccess offers it, else BAC; the access control used."""
        password = mrz_information(key)
        offers = self._pace_offers()
        for info in offers:
            try:
                self.channel.sm = pace.authenticate(self.channel.send, info, password, rng=self.rng)
            except (StatusError, ValueError):
                continue  # not this variant on this chip: the next, or BAC
            self._select_application()
            self.access = "PACE"
            return self.access
        self._select_application()
        self.channel.sm = bac.authenticate(self.channel.send, password, rng=self.rng)
        self.access = "BAC"
        return self.access

    def read(self, names: Sequence[str]) -> dict[str, bytes]:
        """The files of ``names`` that the chip has, each as stored."""
        found: dict[str, bytes] = {}
        for name in names:
            started = time.monotonic()
            content = self.read_file(name)
            self.file_s[name] = time.monotonic() - started
            if content is not None:
                found[name] = content
        return found

    def read_file(self, name: str) -> bytes | None:
        head = self._read_head(name)
        if head is None:
            return None
        try:
            total = tlv.total_length(head)
        except ValueError as exc:
            raise ChipError(f"{name}: no TLV header ({exc})") from None
        if total is None:
            raise ChipError(f"{name}: the file ends inside its TLV header")
        data = bytearray(head[:total])
        while len(data) < total:
            data += self._read_binary(len(data), min(self.chunk, total - len(data)))
        return bytes(data)

    def internal_authenticate(self, challenge: bytes) -> bytes:
        """Active Authentication: the chip's signature over ``challenge`` (ICAO 9303-11 §6.1)."""
        answer = self.channel.send(Command(0x00, INS_INTERNAL_AUTHENTICATE, 0, 0, challenge, ne=256))
        if not answer.ok:
            raise StatusError("INTERNAL AUTHENTICATE", answer.sw)
        return answer.data

    def _pace_offers(self) -> list[pace.PaceInfo]:
        try:
            card_access = self.read_file(files.CARD_ACCESS)
        except StatusError:
            return []
        if card_access is None:
            return []
        try:
            return pace.supported_offers(card_access)
        except ValueError:
            return []  # an EF.CardAccess we cannot parse offers nothing we can use: BAC

    def _select_application(self) -> None:
        answer = self.channel.send(Command(0x00, INS_SELECT, 0x04, 0x0C, files.LDS_AID))
        if not answer.ok:
            raise StatusError("SELECT eMRTD application", answer.sw)

    def _read_head(self, name: str) -> bytes | None:
        if self.short_ids:
            answer = self.channel.send(
                Command(0x00, INS_READ_BINARY, 0x80 | files.short_id(name), 0, ne=HEAD_SIZE)
            )
            if answer.sw == SW_FILE_NOT_FOUND:
                return None
            if answer.sw in (SW_OK, SW_END_OF_FILE) and answer.data:
                return answer.data
            self.short_ids = False  # this chip does not select by short EF id: SELECT from now on
        selected = self.channel.send(
            Command(0x00, INS_SELECT, 0x02, 0x0C, files.file_id(name).to_bytes(2, "big"))
        )
        if selected.sw == SW_FILE_NOT_FOUND:
            return None
        if not selected.ok:
            raise StatusError(f"SELECT {name}", selected.sw)
        return self._read_binary(0, HEAD_SIZE)

    def _read_binary(self, offset: int, length: int) -> bytes:
        if offset <= MAX_SHORT_OFFSET:
            command = Command(0x00, INS_READ_BINARY, offset >> 8, offset & 0xFF, ne=length)
        else:
            # The data comes wrapped in DO'53': leave room for its header within the chunk.
            offset_do = tlv.encode(DO_OFFSET, offset.to_bytes(3, "big"))
            ne = min(length + ODD_WRAPPING, self.chunk)
            command = Command(0x00, INS_READ_BINARY_ODD, 0, 0, offset_do, ne=ne)
        answer = self.channel.send(command)
        if answer.sw not in (SW_OK, SW_END_OF_FILE):
            raise StatusError(f"READ BINARY at {offset}", answer.sw)
        data = answer.data
        if command.ins == INS_READ_BINARY_ODD:
            try:
                data = tlv.unwrap(data, DO_DISCRETIONARY)
            except ValueError as exc:
                raise ChipError(f"READ BINARY at {offset}: {exc}") from None
        if not data:
            raise ChipError(f"file ends at {offset}, before the length its header gives")
        return data


def read_chip(
    raw: RawTransmit,
    key: ChipAccessKey,
    names: Sequence[str],
    *,
    extended_length: bool = False,
    extended_read_size: int = DEFAULT_EXTENDED_READ,
    short_ids: bool = True,
) -> tuple[ChipSession, ChipReading]:
    """Open the chip behind ``raw`` and read ``names``; the result and the open session (for AA)."""
    started = time.monotonic()
    reading = ChipReading(Channel(raw), extended_length, extended_read_size, short_ids)
    access = reading.open(key)
    access_s = time.monotonic() - started
    content = reading.read(names)
    channel = reading.channel
    session = ChipSession(
        access=access,
        files=content,
        apdus=channel.apdus,
        bytes_sent=channel.bytes_sent,
        bytes_received=channel.bytes_received,
        access_s=access_s,
        elapsed_s=time.monotonic() - started,
        file_s=dict(reading.file_s),
    )
    return session, reading
