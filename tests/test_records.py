"""records.py: the one schema of a record (its fields' kinds type every table) and a frame's close fields."""

import asyncio

import pyarrow as pa

from kit_helpers import params_for
from netra_nb import history_store
from netra_nb.checks import Context
from netra_nb.diagnosis import parse_close
from netra_nb.records import FRAME_FIELDS, FRAME_KINDS, RECORD_FIELDS, RECORD_KINDS, Frame, Record, field_kinds


def test_every_field_has_a_kind_read_from_its_annotation():
    assert tuple(RECORD_KINDS) == RECORD_FIELDS and tuple(FRAME_KINDS) == FRAME_FIELDS
    assert RECORD_KINDS["started_at"] == "time"  # the one field whose annotation (str) cannot say
    assert (RECORD_KINDS["http_status"], RECORD_KINDS["bytes_sent"]) == ("code", "count")
    assert (RECORD_KINDS["events_seen"], RECORD_KINDS["duration_s"], RECORD_KINDS["message"]) == ("list", "float", "text")
    assert field_kinds(Frame) == FRAME_KINDS and FRAME_KINDS["close_code"] == "code"


def test_the_history_schema_is_derived_from_the_record():
    schema = history_store._schema()
    assert schema.names == ["run_key", "run_started_at", "series", *RECORD_FIELDS]
    arrow = {"text": pa.string(), "time": pa.timestamp("us", tz="UTC"), "float": pa.float64(), "code": pa.int32(),
             "count": pa.int64(), "list": pa.list_(pa.string())}
    for name, kind in RECORD_KINDS.items():
        assert schema.field(name).type == arrow[kind], name


def test_a_close_frame_is_read_from_its_fields_not_its_text():
    frame = {"direction": "close", "text": "1011 something else (nobody)", "close_code": 1011,
             "close_reason": "Internal error", "closed_by": "server"}
    assert parse_close(frame) == (1011, "Internal error", "server")
    assert parse_close({**frame, "close_code": 1006, "close_reason": "dropped", "closed_by": None}) == (1006, "dropped", None)
    # a frame of an older run folder has no fields: its text is read
    assert parse_close({"text": "1008 AUTH_FAILED by server"}) == (1008, "AUTH_FAILED", "server")


def test_a_recorded_session_close_carries_code_reason_and_who(platform):
    srv = platform(faults=("ws_1011_after_welcome",))

    async def go():
        ctx = Context(params_for(srv), phase="connectivity")
        try:
            record = await ctx.run("websocket_connect")
        finally:
            await ctx.aclose()
        return record, ctx.frames

    record, frames = asyncio.run(go())
    assert isinstance(record, Record) and record.status == "fail"
    [close] = [f for f in frames if f.direction == "close"]
    assert (close.close_code, close.closed_by) == (1011, "server") and close.close_reason
    assert (record.ws_close_code, record.ws_close_reason, record.ws_closed_by) == (
        close.close_code, close.close_reason, close.closed_by)
    assert parse_close(close.to_dict()) == (1011, close.close_reason, "server")
    assert all(f.close_code is None and f.closed_by is None for f in frames if f.direction != "close")
