"""Modbus RTU framing shared by the gate's Modbus backend and its slave simulator."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymodbus.pdu import ExceptionResponse
from pymodbus.pdu.bit_message import (
    ReadCoilsRequest,
    ReadCoilsResponse,
    ReadDiscreteInputsRequest,
    WriteMultipleCoilsRequest,
    WriteSingleCoilRequest,
)

from drivers.gate.modbus_rtu import FrameStatus, RtuCodec, RtuStreamParser, build_frame, crc16

# Anything here could hang on a bug (threads, ptys, waits): fail instead.
pytestmark = pytest.mark.timeout(30)

# The frame every Modbus reference uses as its example: unit 1, read 1 coil at address 0.
READ_COIL_0 = bytes.fromhex("010100000001FDCA")


def requests() -> st.SearchStrategy[bytes]:
    unit = st.integers(1, 247)
    address = st.integers(0, 200)
    count = st.integers(1, 50)
    bits = st.lists(st.booleans(), min_size=1, max_size=40)
    return st.one_of(
        st.builds(lambda u, a, c: build_frame(ReadCoilsRequest(address=a, count=c), u), unit, address, count),
        st.builds(
            lambda u, a, c: build_frame(ReadDiscreteInputsRequest(address=a, count=c), u),
            unit,
            address,
            count,
        ),
        st.builds(
            lambda u, a, v: build_frame(WriteSingleCoilRequest(address=a, bits=[v]), u),
            unit,
            address,
            st.booleans(),
        ),
        st.builds(
            lambda u, a, b: build_frame(WriteMultipleCoilsRequest(address=a, bits=b), u), unit, address, bits
        ),
    )


def test_crc_matches_the_published_example() -> None:
    assert build_frame(ReadCoilsRequest(address=0, count=1), 1) == READ_COIL_0
    assert crc16(READ_COIL_0[:-2]) == int.from_bytes(READ_COIL_0[-2:], "big")


def test_a_request_decodes_with_its_fields() -> None:
    (frame,) = RtuStreamParser(requests=True).feed(
        build_frame(ReadDiscreteInputsRequest(address=3, count=5), 7)
    )
    assert (frame.unit, frame.pdu.function_code, frame.pdu.address, frame.pdu.count) == (7, 2, 3, 5)


def test_a_frame_split_across_reads_is_reassembled() -> None:
    parser = RtuStreamParser(requests=True)
    assert parser.feed(READ_COIL_0[:3]) == []
    assert parser.feed(READ_COIL_0[3:6]) == []
    (frame,) = parser.feed(READ_COIL_0[6:])
    assert frame.raw == READ_COIL_0
    assert parser.dropped_bytes == 0


def test_bad_crc_is_dropped_and_counted_and_the_next_frame_still_parses() -> None:
    parser = RtuStreamParser(requests=True)
    corrupted = READ_COIL_0[:-1] + bytes([READ_COIL_0[-1] ^ 0x01])
    frames = parser.feed(corrupted + READ_COIL_0)
    assert [f.raw for f in frames] == [READ_COIL_0]
    assert parser.dropped_bytes == len(corrupted)


def test_a_partial_frame_is_dropped_when_the_line_goes_quiet() -> None:
    parser = RtuStreamParser(requests=True)
    parser.feed(READ_COIL_0[:5])
    assert parser.gap() == 5
    assert parser.feed(READ_COIL_0)[0].raw == READ_COIL_0


def test_responses_and_exceptions_parse_on_the_master_side() -> None:
    response = build_frame(ReadCoilsResponse(bits=[True, False, True]), 1)
    exception = build_frame(ExceptionResponse(1, 2), 1)
    codec = RtuCodec(requests=False)
    assert codec.status(response) == (FrameStatus.VALID, len(response))
    assert codec.status(exception) == (FrameStatus.VALID, 5)
    assert codec.status(response[:-1] + b"\x00")[0] is FrameStatus.INVALID
    assert RtuCodec(requests=True).status(exception)[0] is FrameStatus.INVALID


# --- fuzzing -------------------------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=600), st.integers(1, 64))
def test_random_bytes_never_raise_and_every_byte_is_accounted_for(data: bytes, chunk: int) -> None:
    parser = RtuStreamParser(requests=True)
    parsed = 0
    for start in range(0, len(data), chunk):
        parsed += sum(len(f.raw) for f in parser.feed(data[start : start + chunk]))
    parser.gap()
    assert parsed + parser.dropped_bytes == len(data)
    assert parser.pending == 0


@FUZZ
@given(st.binary(max_size=80), requests(), st.integers(1, 16))
def test_garbage_before_a_frame_resyncs_to_it(garbage: bytes, frame: bytes, chunk: int) -> None:
    parser = RtuStreamParser(requests=True)
    stream = garbage + frame
    frames = []
    for start in range(0, len(stream), chunk):
        frames += parser.feed(stream[start : start + chunk])
    # Random garbage can itself hold a valid frame (1 in 65536 per candidate); the real one must be last.
    assert frames and frames[-1].raw == frame
    assert parser.dropped_bytes + sum(len(f.raw) for f in frames) == len(stream)


@FUZZ
@given(requests(), st.data())
def test_a_mutated_frame_is_rejected_and_the_following_one_parses(frame: bytes, data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(frame) - 1))
    flip = data.draw(st.integers(1, 255))
    mutated = bytearray(frame)
    mutated[position] ^= flip
    parser = RtuStreamParser(requests=True)
    frames = parser.feed(bytes(mutated) + frame)
    # CRC-16 detects every error burst of 8 bits or less, so the mutated copy never parses.
    assert [f.raw for f in frames] == [frame]
    assert parser.dropped_bytes == len(frame)


def test_worst_case_input_is_parsed_in_bounded_time() -> None:
    # 0x0F claims a byte count: a long run of such headers keeps many candidates incomplete.
    parser = RtuStreamParser(requests=True)
    for _ in range(20):
        parser.feed(bytes([0x01, 0x0F, 0x00, 0x00, 0x00, 0x08, 0xF0]) * 40)
    assert parser.pending <= 256
