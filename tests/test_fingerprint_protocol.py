"""R30x protocol without I/O: framing, the stream parser under noise, command layouts, error table,
and the simulator's finger model."""

from __future__ import annotations

import contextlib
import itertools
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.fingerprint import finger_model
from drivers.fingerprint.commands import (
    DESCRIPTIONS,
    INDEX_PAGE_SLOTS,
    INDEX_PAGES,
    LAYOUTS,
    PACKET_SIZES,
    Confirmation,
    Instruction,
    SystemParameters,
    decode_command,
    decode_index_page,
    decode_reply,
    encode_command,
    encode_index_page,
    encode_reply,
)
from drivers.fingerprint.errors import ERRORS, ConfirmationError, confirmation_error
from drivers.fingerprint.protocol import (
    MAX_PAYLOAD,
    MAX_TRANSFER,
    START_CODE,
    DataAssembler,
    Packet,
    PacketKind,
    PacketParser,
    ProtocolError,
    checksum,
    data_packets,
    decode,
    encode,
)
from drivers.interfaces import DeviceError

# The parser loops over untrusted bytes: a bug there must fail, not hang, the suite.
pytestmark = pytest.mark.timeout(30)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

packets = st.builds(
    Packet,
    kind=st.sampled_from(list(PacketKind)),
    payload=st.binary(min_size=1, max_size=MAX_PAYLOAD),
    address=st.integers(0, 0xFFFFFFFF),
)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def parse_all(data: bytes, cuts: list[int] | None = None) -> tuple[list[Packet], PacketParser]:
    parser = PacketParser()
    out: list[Packet] = []
    for chunk in chunked(data, cuts or []):
        out += parser.feed(chunk)
    out += parser.flush()
    return out, parser


# --- framing ---------------------------------------------------------------------------------------


def test_known_frames_from_the_datasheet_examples():
    # VfyPwd with the default password, and GenImg, as every public client sends them.
    vfy = Packet(PacketKind.COMMAND, bytes.fromhex("1300000000"))
    assert encode(vfy) == bytes.fromhex("EF01 FFFFFFFF 01 0007 13 00000000 001B")
    assert encode(Packet(PacketKind.COMMAND, b"\x01")) == bytes.fromhex("EF01 FFFFFFFF 01 0003 01 0005")


@given(packets)
def test_encode_decode_round_trip(packet):
    frame = encode(packet)
    assert frame.startswith(START_CODE)
    assert len(frame) == packet.frame_size
    assert decode(frame) == packet


@given(packets)
def test_checksum_is_the_sum_mod_65536(packet):
    frame = encode(packet)
    body = frame[6:-2]
    assert int.from_bytes(frame[-2:], "big") == sum(body) % 65536 == checksum(packet.kind, packet.payload)


@pytest.mark.parametrize("payload", [b"", bytes(MAX_PAYLOAD + 1)])
def test_encode_refuses_impossible_payloads(payload):
    with pytest.raises(ValueError):
        encode(Packet(PacketKind.DATA, payload))


@given(packets, st.data())
def test_decode_refuses_damaged_frames(packet, data):
    frame = bytearray(encode(packet))
    position = data.draw(st.integers(0, len(frame) - 1))
    frame[position] ^= data.draw(st.integers(1, 255))
    if 2 <= position < 6:
        # The checksum does not cover the address: damage there is a packet for someone else.
        assert decode(bytes(frame)).address != packet.address
    else:
        with pytest.raises(ProtocolError):
            decode(bytes(frame))  # one changed byte always changes the sum (or the frame's shape)
    with pytest.raises(ProtocolError):
        decode(encode(packet)[:-1])
    with pytest.raises(ProtocolError):
        decode(encode(packet) + b"\x00")


# --- the stream parser -----------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=2000), st.lists(st.integers(0, 2000), max_size=20))
def test_random_bytes_never_raise_and_every_byte_is_accounted_for(data, cuts):
    out, parser = parse_all(data, cuts)
    # Anything accepted is a genuine frame of the input, and nothing is lost without being counted.
    for packet in out:
        assert encode(packet) in data
    assert parser.pending == 0
    assert parser.dropped_bytes + sum(p.frame_size for p in out) == len(data)


@FUZZ
@given(st.binary(max_size=500), st.lists(packets, min_size=1, max_size=5), st.lists(st.integers(0, 3000)))
def test_resynchronises_after_garbage_without_a_start_byte(garbage, frames, cuts):
    garbage = garbage.replace(START_CODE[:1], b"\x00")
    stream = garbage + b"".join(encode(f) for f in frames)
    out, parser = parse_all(stream, cuts)
    assert out == frames
    assert parser.dropped_bytes == len(garbage)


@FUZZ
@given(packets, packets, st.data())
def test_resynchronises_after_a_mutated_frame(damaged, good, data):
    frame = bytearray(encode(damaged))
    mutation = data.draw(st.sampled_from(["flip", "delete", "insert", "truncate", "length"]))
    at = data.draw(st.integers(0, len(frame) - 1))
    if mutation == "flip":
        frame[at] ^= data.draw(st.integers(1, 255))
    elif mutation == "delete":
        del frame[at]
    elif mutation == "insert":
        frame.insert(at, data.draw(st.integers(0, 255)))
    elif mutation == "truncate":
        del frame[at:]
    else:
        frame[7:9] = data.draw(st.integers(0, 0xFFFF)).to_bytes(2, "big")
    good_frame = encode(good)
    # Enough copies that even a damaged header claiming the longest frame cannot swallow them all.
    copies = 2 + 300 // len(good_frame)
    out, parser = parse_all(bytes(frame) + good_frame * copies, data.draw(st.lists(st.integers(0, 5000))))
    assert good in out
    assert parser.dropped_bytes + sum(p.frame_size for p in out) == len(frame) + len(good_frame) * copies


def test_an_implausible_length_is_rejected_at_once_not_waited_for():
    good = encode(Packet(PacketKind.ACK, b"\x00"))
    parser = PacketParser()
    fake_header = START_CODE + b"\xff\xff\xff\xff\x02\xff\xff"
    assert parser.feed(fake_header + good) == [decode(good)]  # no flush needed: nothing was waited for
    assert parser.rejected_frames == 1 and parser.dropped_bytes == len(fake_header)


def test_a_stalled_frame_is_abandoned_when_the_line_goes_quiet():
    good = encode(Packet(PacketKind.ACK, b"\x00\x01\x02"))
    stalled = START_CODE + b"\xff\xff\xff\xff\x07\x00\x40"  # plausible header, 64 bytes never come
    parser = PacketParser()
    assert parser.feed(stalled + good) == []
    assert parser.pending == len(stalled + good)
    assert parser.flush() == [decode(good)]
    assert parser.pending == 0


def test_a_start_byte_split_across_reads_is_kept():
    frame = encode(Packet(PacketKind.ACK, b"\x00"))
    parser = PacketParser()
    assert parser.feed(b"noise" + frame[:1]) == []
    assert parser.feed(frame[1:]) == [decode(frame)]
    assert parser.dropped_bytes == len(b"noise")


# --- data transfers --------------------------------------------------------------------------------


@given(st.binary(min_size=1, max_size=MAX_TRANSFER), st.sampled_from(PACKET_SIZES))
def test_data_transfer_round_trip(data, size):
    transfer = data_packets(data, size)
    assert all(len(p.payload) <= size for p in transfer)
    assert [p.kind for p in transfer] == [PacketKind.DATA] * (len(transfer) - 1) + [PacketKind.END_OF_DATA]
    assembler = DataAssembler()
    results = [assembler.add(p) for p in transfer]
    assert results[:-1] == [None] * (len(transfer) - 1) and results[-1] == data


def test_data_assembler_refuses_runaway_or_foreign_packets():
    assembler = DataAssembler(max_bytes=256)
    assembler.add(Packet(PacketKind.DATA, bytes(200)))
    with pytest.raises(ProtocolError):
        assembler.add(Packet(PacketKind.DATA, bytes(100)))
    with pytest.raises(ProtocolError):
        DataAssembler().add(Packet(PacketKind.ACK, b"\x00"))
    with pytest.raises(ValueError):
        data_packets(b"", 128)


# --- command and reply layouts ---------------------------------------------------------------------


_FIELDS = {"B": st.integers(0, 0xFF), "H": st.integers(0, 0xFFFF), "I": st.integers(0, 0xFFFFFFFF)}


def _values(layout: str) -> st.SearchStrategy[tuple[int | bytes, ...]]:
    if layout.endswith("s"):
        size = int(layout[:-1])
        return st.tuples(st.binary(min_size=size, max_size=size))
    return st.tuples(*(_FIELDS[code] for code in layout))


@given(st.data())
def test_every_command_and_reply_round_trips(data):
    instruction = data.draw(st.sampled_from(list(Instruction)))
    layout = LAYOUTS[instruction]
    parameters = data.draw(_values(layout.parameters))
    command = decode_command(encode_command(instruction, *parameters))
    assert command.instruction is instruction and command.parameters == parameters
    fields = data.draw(_values(layout.reply))
    reply = decode_reply(instruction, encode_reply(instruction, Confirmation.OK, *fields))
    assert reply.ok and reply.fields == fields


@pytest.mark.parametrize("instruction", list(Instruction))
def test_a_failure_reply_carries_no_fields(instruction):
    payload = encode_reply(instruction, Confirmation.FLASH_ERROR)
    assert len(payload) == 1 + struct.calcsize(">" + LAYOUTS[instruction].reply)
    assert decode_reply(instruction, payload) == decode_reply(instruction, payload[:1])
    assert decode_reply(instruction, payload).fields == ()


def test_a_reply_of_the_wrong_shape_is_a_protocol_error():
    with pytest.raises(ProtocolError):
        decode_reply(Instruction.MATCH, b"\x00")  # success without its score
    with pytest.raises(ProtocolError):
        decode_reply(Instruction.GEN_IMG, b"\x00\x00\x10")  # e.g. a late Match answer
    with pytest.raises(ProtocolError):
        decode_command(b"\x42")
    with pytest.raises(ProtocolError):
        decode_command(encode_command(Instruction.SEARCH, 1, 0, 10)[:-1])


@FUZZ
@given(st.binary(max_size=64), st.sampled_from(list(Instruction)))
def test_random_payloads_only_ever_raise_protocol_error(payload, instruction):
    for call in (lambda: decode_command(payload), lambda: decode_reply(instruction, payload)):
        with contextlib.suppress(ProtocolError):
            call()


@given(
    st.builds(
        SystemParameters,
        status=st.integers(0, 0xFFFF),
        system_id=st.integers(0, 0xFFFF),
        capacity=st.integers(0, 0xFFFF),
        security_level=st.integers(1, 5),
        address=st.integers(0, 0xFFFFFFFF),
        packet_size=st.sampled_from(PACKET_SIZES),
        baudrate=st.integers(1, 12).map(lambda n: n * 9600),
    )
)
def test_system_parameters_round_trip(parameters):
    payload = encode_reply(Instruction.READ_SYS_PARA, Confirmation.OK, *parameters.encode_fields())
    fields = decode_reply(Instruction.READ_SYS_PARA, payload).fields
    assert SystemParameters.decode_fields(fields) == parameters


@given(st.integers(0, INDEX_PAGES - 1), st.sets(st.integers(0, INDEX_PAGES * INDEX_PAGE_SLOTS - 1)))
def test_index_pages_round_trip(page, used):
    bitmap = encode_index_page(page, used)
    assert len(bitmap) == INDEX_PAGE_SLOTS // 8
    first = page * INDEX_PAGE_SLOTS
    assert decode_index_page(page, bitmap) == {s for s in used if first <= s < first + INDEX_PAGE_SLOTS}


# --- confirmation codes ----------------------------------------------------------------------------


def test_every_confirmation_code_has_a_description_and_an_exception_of_its_own():
    assert set(DESCRIPTIONS) == set(Confirmation)
    assert set(ERRORS) == set(Confirmation) - {Confirmation.OK}
    assert len(set(ERRORS.values())) == len(ERRORS)
    for code, cls in ERRORS.items():
        error = confirmation_error("fingerprint", Instruction.GEN_IMG, code)
        assert type(error) is cls and isinstance(error, DeviceError)
        assert error.code == code and f"0x{code:02X}" in str(error)
        assert DESCRIPTIONS[code] in str(error)


def test_an_unknown_confirmation_code_still_raises_a_clear_error():
    error = confirmation_error("fingerprint", Instruction.MATCH, 0x77)
    assert type(error) is ConfirmationError and error.code == 0x77 and "0x77" in str(error)


# --- the simulator's finger model ------------------------------------------------------------------


def test_finger_model_scores_like_a_module():
    score, capture, template_for = finger_model.score, finger_model.capture, finger_model.template_for
    same = [score(capture(7, 1), capture(7, n)) for n in range(2, 30)]
    reference = [score(capture(f, 3), template_for(f)) for f in range(30)]
    other = [score(capture(f, 1), template_for(f + 1)) for f in range(60)]
    assert min(same) > 150 and min(reference) > 150
    assert max(other) < 10
    assert finger_model.template_for(7) == finger_model.template_for(7)
    assert len(finger_model.template_for(7)) == 512
    assert finger_model.capture(7, 1) != finger_model.capture(7, 2)


def test_finger_model_merges_only_the_same_finger():
    a, b = finger_model.capture(4, 1), finger_model.capture(4, 2)
    merged = finger_model.merge(a, b)
    assert merged is not None
    assert finger_model.score(merged, finger_model.capture(4, 3)) > 150
    assert finger_model.merge(a, finger_model.capture(5, 1)) is None
    assert finger_model.score(a, b"") == 0 and finger_model.score(a, a[:-1]) == 0
