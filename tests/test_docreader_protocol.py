"""The MRZ reader wire format and stream parser, without I/O: framing, shapes, resync, accounting."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from drivers.docreader.options import SerialReaderOptions
from drivers.docreader.parser import StreamParser, new_parser
from drivers.docreader.protocol import (
    ETX,
    STATUS_PROFILES,
    STX,
    Document,
    DocumentEvent,
    Dropped,
    DropReason,
    Framing,
    Output,
    ParserSettings,
    StatusEvent,
    StatusProfile,
    encode_document,
    encode_event,
    is_mrz_shape,
)

TD3 = ("P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<", "L898902C36UTO7408122F1204159ZE184226B<<<<<10")
TD2 = ("I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<", "D231458907UTO7408122F1204159<<<<<<<6")
TD1 = ("I<UTOD231458907<<<<<<<<<<<<<<<", "7408122F1204159UTO<<<<<<<<<<<6", "ERIKSSON<<ANNA<MARIA<<<<<<<<<<")
SPECIMENS = (TD3, TD2, TD1)
IDLE_S = 0.5
LINE_FRAMINGS = (Framing.CR, Framing.LF, Framing.CRLF)


class Run:
    """A parser plus everything it has said, with the byte accounting checked after every call."""

    def __init__(self, framing: Framing, status: StatusProfile | None = None, max_bytes: int = 256) -> None:
        self.parser: StreamParser = new_parser(
            ParserSettings(framing, IDLE_S, max_bytes, status or StatusProfile())
        )
        self.outputs: list[Output] = []
        self.fed = 0
        self.now = 0.0

    def feed(self, data: bytes, *, after_s: float = 0.0) -> list[Output]:
        self.now += after_s
        self.fed += len(data)
        return self._note(self.parser.feed(data, self.now))

    def pause(self) -> list[Output]:
        """Let the idle timeout pass."""
        self.now += IDLE_S + 0.01
        return self._note(self.parser.poll(self.now))

    def reset(self) -> list[Output]:
        return self._note(self.parser.reset(self.now))

    def _note(self, outputs: list[Output]) -> list[Output]:
        self.outputs += outputs
        accounted = (
            sum(o.nbytes for o in self.outputs) + self.parser.ignored_bytes + self.parser.pending_bytes
        )
        assert accounted == self.fed, "every byte fed is delivered, dropped, ignored or pending"
        return outputs

    @property
    def documents(self) -> list[tuple[str, ...]]:
        return [o.lines for o in self.outputs if isinstance(o, Document)]

    @property
    def events(self) -> list[DocumentEvent]:
        return [o.kind for o in self.outputs if isinstance(o, StatusEvent)]

    @property
    def drops(self) -> list[tuple[DropReason, int]]:
        return [(o.reason, o.nbytes) for o in self.outputs if isinstance(o, Dropped)]

    def reasons(self) -> set[DropReason]:
        return {reason for reason, _ in self.drops}


def wire(lines: Sequence[str], framing: Framing, blank_line: bool = True) -> bytes:
    return encode_document(lines, framing, blank_line=blank_line)


# --- framing variants ------------------------------------------------------------------------------


@pytest.mark.parametrize("framing", list(Framing))
@pytest.mark.parametrize("blank_line", [True, False])
@pytest.mark.parametrize("lines", SPECIMENS, ids=["TD3", "TD2", "TD1"])
def test_each_framing_delivers_each_shape_as_soon_as_its_last_line_arrives(
    framing: Framing, blank_line: bool, lines: tuple[str, ...]
) -> None:
    run = Run(framing)
    data = wire(lines, framing, blank_line)
    out = run.feed(data)
    # no pause needed: the last line completes the shape
    assert [o.lines for o in out if isinstance(o, Document)] == [lines]
    assert run.drops == []
    assert run.pause() == []
    assert run.parser.pending_bytes == 0


@pytest.mark.parametrize("framing", list(Framing))
def test_every_split_of_the_stream_gives_the_same_result(framing: Framing) -> None:
    data = wire(TD1, framing) + wire(TD3, framing)
    for size in (1, 2, 3, 7, 45):
        run = Run(framing)
        for start in range(0, len(data), size):
            run.feed(data[start : start + size])
        assert run.documents == [TD1, TD3]


@pytest.mark.parametrize("framing", LINE_FRAMINGS)
def test_last_line_without_terminator_counts_after_the_pause(framing: Framing) -> None:
    run = Run(framing)
    data = wire(TD3, framing, blank_line=False)
    run.feed(data[: -len(framing.terminator)])
    assert run.documents == []
    run.pause()
    assert run.documents == [TD3]


def test_a_last_line_with_half_a_crlf_counts_after_the_pause() -> None:
    run = Run(Framing.CRLF)
    run.feed(wire(TD3, Framing.CRLF, blank_line=False)[:-1])
    run.pause()
    assert run.documents == [TD3]
    assert run.drops == [(DropReason.NOISE, 1)]


@pytest.mark.parametrize("framing", LINE_FRAMINGS)
def test_a_document_cut_off_by_a_pause_is_dropped_not_delivered(framing: Framing) -> None:
    run = Run(framing)
    first_line = TD1[0].encode() + framing.terminator
    run.feed(first_line + b"7408122F1204")  # a line and a half of a 3-line document
    run.pause()
    assert run.documents == []
    assert run.drops == [(DropReason.TRUNCATED, len(first_line)), (DropReason.BAD_SHAPE, 12)]


@pytest.mark.parametrize("framing", LINE_FRAMINGS)
def test_a_blank_line_closes_a_document_that_stopped_short(framing: Framing) -> None:
    run = Run(framing)
    run.feed(wire(TD1[:2], framing) + wire(TD3, framing))
    assert run.documents == [TD3]
    assert run.drops == [(DropReason.TRUNCATED, 2 * (30 + len(framing.terminator)))]


def test_a_line_of_another_length_starts_afresh() -> None:
    run = Run(Framing.CR)
    run.feed(f"{TD1[0]}\r{TD3[0]}\r{TD3[1]}\r".encode())
    assert run.documents == [TD3]
    assert run.drops == [(DropReason.TRUNCATED, 31)]


def test_lines_that_fit_no_shape_are_dropped() -> None:
    run = Run(Framing.LF)
    run.feed(b"".join(line[:-1].encode() + b"\n" for line in TD3) + b"\n")
    assert run.documents == []
    assert run.drops == [(DropReason.BAD_SHAPE, 44), (DropReason.BAD_SHAPE, 44)]


def test_back_to_back_duplicate_reads_are_two_documents() -> None:
    run = Run(Framing.CR)
    run.feed(wire(TD3, Framing.CR, blank_line=False) * 2)
    assert run.documents == [TD3, TD3]


def test_crlf_framing_treats_a_lone_cr_or_lf_as_noise() -> None:
    run = Run(Framing.CRLF)
    run.feed(b"ab\rcd\nef")
    run.feed(b"\r")
    run.feed(b"\n" + wire(TD3, Framing.CRLF))
    assert run.documents == [TD3]
    assert run.drops == [(DropReason.NOISE, 3), (DropReason.NOISE, 3), (DropReason.BAD_SHAPE, 4)]


# --- noise and resync ------------------------------------------------------------------------------


@pytest.mark.parametrize("framing", list(Framing))
def test_noise_that_ends_in_a_non_text_byte_does_not_cost_the_next_document(framing: Framing) -> None:
    run = Run(framing)
    noise = b"\x00\x00\xff\xfe garbage \x80\x00"
    run.feed(noise + wire(TD3, framing))
    assert run.documents == [TD3]
    assert run.reasons() == {DropReason.NOISE}
    assert sum(n for _, n in run.drops) == len(noise)


@pytest.mark.parametrize("framing", LINE_FRAMINGS)
def test_printable_garbage_glued_to_a_line_costs_that_document_only(framing: Framing) -> None:
    run = Run(framing)
    run.feed(b"xyz" + wire(TD3, framing) + wire(TD2, framing))
    assert run.documents == [TD2]
    assert DropReason.BAD_SHAPE in run.reasons()


@pytest.mark.parametrize("framing", LINE_FRAMINGS)
def test_a_line_that_never_ends_is_skipped_up_to_the_next_terminator(framing: Framing) -> None:
    run = Run(framing, max_bytes=128)
    run.feed(b"A" * 1000)
    assert run.parser.pending_bytes <= 128
    run.feed(b"B" * 1000 + framing.terminator + wire(TD3, framing))
    assert run.documents == [TD3]
    assert run.reasons() == {DropReason.OVERSIZE}
    assert sum(n for _, n in run.drops) == 2000 + len(framing.terminator)


def test_a_frame_that_never_ends_is_skipped_and_the_next_stx_resynchronises() -> None:
    run = Run(Framing.STX_ETX, max_bytes=128)
    run.feed(bytes([STX]) + b"x" * 500)
    assert run.parser.pending_bytes <= 128
    run.feed(wire(TD3, Framing.STX_ETX))
    assert run.documents == [TD3]
    assert run.reasons() == {DropReason.OVERSIZE}


def test_an_stx_inside_a_frame_drops_the_cut_off_frame() -> None:
    run = Run(Framing.STX_ETX)
    cut = bytes([STX]) + TD3[0].encode() + b"\r"
    run.feed(cut + wire(TD1, Framing.STX_ETX))
    assert run.documents == [TD1]
    assert run.drops == [(DropReason.TRUNCATED, len(cut))]


def test_an_unfinished_frame_is_dropped_after_the_pause() -> None:
    run = Run(Framing.STX_ETX)
    run.feed(wire(TD3, Framing.STX_ETX)[:-1])
    assert run.pause() == [Dropped(DropReason.TRUNCATED, 1 + 2 * 45)]
    assert run.documents == []


def test_frames_accept_any_line_break_and_skip_empty_lines() -> None:
    run = Run(Framing.STX_ETX)
    body = f"\r\n{TD3[0]}\n{TD3[1]}\r\n".encode()
    run.feed(b"\r\n" + bytes([STX]) + body + bytes([ETX]) + b"\r\n")
    assert run.documents == [TD3]
    assert run.parser.ignored_bytes == 4


def test_frames_with_non_text_bytes_or_wrong_shape_are_dropped() -> None:
    run = Run(Framing.STX_ETX)
    bad_bytes = bytes([STX]) + TD3[0].encode() + b"\r" + TD3[1][:-1].encode() + b"\x00\r" + bytes([ETX])
    bad_shape = encode_document(TD1[:2], Framing.STX_ETX)
    run.feed(bad_bytes + bad_shape + bytes([STX, ETX]))
    assert run.drops == [
        (DropReason.NOISE, len(bad_bytes)),
        (DropReason.BAD_SHAPE, len(bad_shape)),
        (DropReason.BAD_SHAPE, 2),
    ]


@pytest.mark.parametrize("framing", list(Framing))
def test_reset_cuts_off_what_was_in_progress(framing: Framing) -> None:
    run = Run(framing)
    run.feed(wire(TD3, framing)[:50])
    assert run.reset() == [Dropped(DropReason.TRUNCATED, 50)]
    assert run.parser.pending_bytes == 0
    run.feed(wire(TD3, framing))
    assert run.documents == [TD3]


# --- status events ---------------------------------------------------------------------------------


@pytest.mark.parametrize("framing", list(Framing))
@pytest.mark.parametrize("profile", ["at-lines", "control-bytes"])
def test_status_events_around_a_document(framing: Framing, profile: str) -> None:
    status = STATUS_PROFILES[profile]
    run = Run(framing, status)
    run.feed(
        encode_event(DocumentEvent.PRESENT, framing, status)
        + wire(TD3, framing)
        + encode_event(DocumentEvent.REMOVED, framing, status)
    )
    assert run.events == [DocumentEvent.PRESENT, DocumentEvent.REMOVED]
    assert run.documents == [TD3]
    assert run.drops == []


def test_a_control_byte_event_inside_a_line_is_taken_out_of_it() -> None:
    status = STATUS_PROFILES["control-bytes"]
    run = Run(Framing.CR, status)
    data = bytearray(wire(TD3, Framing.CR))
    data[10:10] = status.removed
    run.feed(bytes(data))
    assert run.events == [DocumentEvent.REMOVED]
    assert run.documents == [TD3]


@pytest.mark.parametrize("framing", LINE_FRAMINGS)
def test_a_status_line_between_the_lines_of_a_document_leaves_it_whole(framing: Framing) -> None:
    status = STATUS_PROFILES["at-lines"]
    run = Run(framing, status)
    term = framing.terminator
    run.feed(
        TD3[0].encode() + term + encode_event(DocumentEvent.REMOVED, framing, status) + TD3[1].encode() + term
    )
    assert run.events == [DocumentEvent.REMOVED]
    assert run.documents == [TD3]


def test_without_a_profile_status_lines_are_just_lines_of_no_shape() -> None:
    run = Run(Framing.CR)
    run.feed(encode_event(DocumentEvent.PRESENT, Framing.CR, STATUS_PROFILES["at-lines"]))
    assert run.events == []
    assert run.drops == [(DropReason.BAD_SHAPE, 13)]


def test_a_reader_without_a_removal_token_sends_nothing_on_removal() -> None:
    assert encode_event(DocumentEvent.REMOVED, Framing.CR, StatusProfile()) == b""


@pytest.mark.parametrize(
    "present, removed",
    [(b"\x00", b""), (b"\r", b""), (b"\x02", b""), (b"A\x01", b""), (b"@X", b"@X"), (b"\xff\xfe", b"")],
)
def test_tokens_that_would_be_framing_or_ambiguous_are_refused(present: bytes, removed: bytes) -> None:
    with pytest.raises(ValueError):
        StatusProfile(present, removed)


# --- encoder and settings ----------------------------------------------------------------------------


@pytest.mark.parametrize("line", ["", "P<UTO\rX", "P<UTO\x00", "PÄSS", "P\tX"])
def test_the_encoder_refuses_lines_a_reader_cannot_send(line: str) -> None:
    with pytest.raises(ValueError):
        encode_document([line], Framing.CR)


def test_the_encoder_frames_like_the_documented_stx_etx_readers() -> None:
    assert encode_document(["AB", "CD"], Framing.STX_ETX) == b"\x02AB\rCD\r\x03"
    assert encode_document(["AB"], Framing.CRLF) == b"AB\r\n\r\n"
    assert encode_document(["AB"], Framing.LF, blank_line=False) == b"AB\n"


def test_shapes() -> None:
    assert all(is_mrz_shape(lines) for lines in SPECIMENS)
    assert not is_mrz_shape(TD3[:1])
    assert not is_mrz_shape((TD3[0], TD2[1]))
    assert not is_mrz_shape((*TD1, TD1[0]))
    assert not is_mrz_shape(())


@pytest.mark.parametrize(
    "kwargs", [{"idle_s": 0.001}, {"idle_s": 11.0}, {"max_document_bytes": 97}, {"max_document_bytes": 70000}]
)
def test_settings_out_of_range_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ParserSettings(**kwargs)  # type: ignore[arg-type]


# --- options --------------------------------------------------------------------------------------


def test_options_default_to_cr_lines_without_events() -> None:
    options = SerialReaderOptions()
    assert options.settings == ParserSettings()
    assert options.queue_size == 4
    assert options.serial_options == {"parity": "N", "stopbits": 1, "bytesize": 8}


def test_options_are_all_honoured() -> None:
    options = SerialReaderOptions.model_validate(
        {
            "framing": "stx-etx",
            "idle_ms": 250,
            "max_document_bytes": 512,
            "events": "at-lines",
            "event_removed": "\u000f",
            "queue_size": 2,
            "parity": "O",
            "stopbits": 2,
            "bytesize": 7,
        }
    )
    assert options.settings == ParserSettings(
        Framing.STX_ETX, 0.25, 512, StatusProfile(b"@DOC_PRESENT", b"\x0f")
    )
    assert options.queue_size == 2
    assert options.serial_options == {"parity": "O", "stopbits": 2, "bytesize": 7}


@pytest.mark.parametrize(
    "options, key",
    [
        ({"framming": "cr"}, "framming"),
        ({"framing": "CRLF"}, "framing"),
        ({"idle_ms": True}, "idle_ms"),
        ({"idle_ms": "500"}, "idle_ms"),
        ({"idle_ms": 5}, "idle_ms"),
        ({"max_document_bytes": 64}, "max_document_bytes"),
        ({"max_document_bytes": 300.5}, "max_document_bytes"),
        ({"events": "vendor"}, "events"),
        ({"event_present": "\u0000"}, "event_present"),
        ({"event_present": 14}, "event_present"),
        ({"queue_size": 0}, "queue_size"),
        ({"parity": "X"}, "parity"),
        ({"stopbits": 3}, "stopbits"),
        ({"bytesize": 5}, "bytesize"),
    ],
)
def test_bad_options_are_refused_with_the_key_named(options: dict[str, object], key: str) -> None:
    with pytest.raises(ValidationError, match=key):
        SerialReaderOptions.model_validate(options)


# --- fuzzing -----------------------------------------------------------------------------------------

framings = st.sampled_from(list(Framing))
profiles = st.sampled_from([StatusProfile(), STATUS_PROFILES["at-lines"], STATUS_PROFILES["control-bytes"]])
specimens = st.sampled_from(SPECIMENS)
# biased towards the bytes that matter to the framing
interesting = st.sampled_from([0x00, STX, ETX, 0x0A, 0x0D, 0x0E, 0x0F, 0x3C, 0x41, 0x80, 0xFF])
noise = st.lists(st.one_of(st.integers(0, 255), interesting), max_size=400).map(bytes)


def assert_sane(run: Run) -> None:
    for output in run.outputs:
        assert output.nbytes > 0
        if isinstance(output, Document):
            assert is_mrz_shape(output.lines)
            assert all(line.isascii() and line.isprintable() for line in output.lines)


def separator(framing: Framing) -> bytes:
    """What reliably ends any junk: a boundary the framing offers."""
    return bytes([STX, ETX]) if framing is Framing.STX_ETX else framing.terminator * 2


@settings(max_examples=300, deadline=None)
@given(framing=framings, status=profiles, data=noise, cuts=st.lists(st.integers(0, 400), max_size=6))
def test_fuzz_random_bytes_never_break_the_parser(
    framing: Framing, status: StatusProfile, data: bytes, cuts: list[int]
) -> None:
    run = Run(framing, status, max_bytes=128)
    start = 0
    for cut in sorted(cuts):
        run.feed(data[start:cut], after_s=0.01)
        start = max(start, cut)
    run.feed(data[start:])
    assert_sane(run)
    # then, after a pause, a good document still arrives intact
    run.pause()
    assert run.parser.pending_bytes == 0
    before = len(run.documents)
    run.feed(wire(TD3, framing))
    assert run.documents[before:] == [TD3]
    assert run.parser.pending_bytes == 0


@settings(max_examples=300, deadline=None)
@given(framing=framings, data=noise, lines=specimens)
def test_fuzz_resync_at_the_next_boundary_without_a_pause(
    framing: Framing, data: bytes, lines: tuple[str, ...]
) -> None:
    run = Run(framing, max_bytes=128)
    run.feed(data + separator(framing) + wire(lines, framing))
    assert_sane(run)
    assert run.documents[-1:] == [lines]


@st.composite
def mutated_documents(draw: st.DrawFn) -> tuple[Framing, bytes]:
    framing = draw(framings)
    data = bytearray(
        b"".join(wire(lines, framing) for lines in draw(st.lists(specimens, min_size=1, max_size=3)))
    )
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["flip", "insert", "delete", "duplicate"]))
        if action == "insert" or not data:
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del data[position : position + draw(st.integers(1, 8))]
        elif action == "duplicate":
            data[position:position] = data[position : position + draw(st.integers(1, 50))]
        else:
            data[min(position, len(data) - 1)] ^= 1 << draw(st.integers(0, 7))
    return framing, bytes(data)


@settings(max_examples=300, deadline=None)
@given(case=mutated_documents(), chunk=st.integers(1, 64))
def test_fuzz_mutated_documents_are_delivered_intact_or_reported(
    case: tuple[Framing, bytes], chunk: int
) -> None:
    framing, data = case
    run = Run(framing)
    for start in range(0, len(data), chunk):
        run.feed(data[start : start + chunk])
    run.pause()
    assert_sane(run)
    # all of it is accounted for: nothing is held back once the pause has passed
    assert run.parser.pending_bytes == 0
    run.feed(wire(TD2, framing))
    assert run.documents[-1] == TD2
