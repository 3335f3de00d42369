"""actors.runtime.logs: the text and JSON line formats, levels, idempotence, redaction."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from actors.runtime.logs import setup_logging

# 2026-11-26T18:00:00.123Z
CREATED = 1795716000.123
SECRET = "a-secret-of-enough-length"


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    """setup_logging changes the process-wide root logger; put it back after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def emit(name: str, level: int, msg: str, *args: object, **fields: object) -> None:
    """Log one record at a fixed time, as a logger named ``name`` would."""
    record = logging.LogRecord(name, level, __file__, 1, msg, args, None)
    record.created, record.msecs = CREATED, 123.0
    record.__dict__.update(fields)
    logging.getLogger(name).handle(record)


def test_text_line_names_time_level_node_and_actor() -> None:
    out = io.StringIO()
    setup_logging("INFO", False, "node-1", stream=out)
    emit("actors.raft.actor", logging.INFO, "became leader in term %d", 2)
    assert out.getvalue() == "2026-11-26T18:00:00.123Z INFO node-1 raft: became leader in term 2\n"


def test_json_line_has_ts_level_node_actor_msg() -> None:
    out = io.StringIO()
    setup_logging("INFO", True, "node-2", stream=out)
    emit("actors.storage.actor", logging.WARNING, "slow fsync: %s ms", 250)
    (line,) = out.getvalue().splitlines()
    assert json.loads(line) == {
        "ts": "2026-11-26T18:00:00.123Z",
        "level": "WARNING",
        "node": "node-2",
        "actor": "storage",
        "msg": "slow fsync: 250 ms",
    }


def test_an_actor_attribute_names_the_actor() -> None:
    out = io.StringIO()
    setup_logging("INFO", False, "node-1", stream=out)
    logging.getLogger("actors.node").info("started", extra={"actor": "webhook"})
    assert " INFO node-1 webhook: started\n" in out.getvalue()


def test_records_below_the_level_are_dropped() -> None:
    out = io.StringIO()
    setup_logging("WARNING", False, "node-1", stream=out)
    logging.getLogger("actors.raft.actor").info("quiet")
    logging.getLogger("actors.raft.actor").error("loud")
    assert [line.split(" ", 1)[1] for line in out.getvalue().splitlines()] == [
        "ERROR node-1 raft: loud"
    ]


def test_debug_level_lets_debug_through() -> None:
    out = io.StringIO()
    setup_logging("DEBUG", False, "node-1", stream=out)
    logging.getLogger("actors.scheduler.actor").debug("slot %d", 7)
    assert out.getvalue().endswith(" DEBUG node-1 scheduler: slot 7\n")


def test_json_lines_carry_the_traceback_in_exc() -> None:
    out = io.StringIO()
    setup_logging("INFO", True, "node-1", stream=out)
    try:
        raise RuntimeError("disk gone")
    except RuntimeError:
        logging.getLogger("actors.storage.actor").exception("storage actor failed")
    (line,) = out.getvalue().splitlines()
    event = json.loads(line)
    assert (event["level"], event["actor"], event["msg"]) == (
        "ERROR",
        "storage",
        "storage actor failed",
    )
    assert event["exc"].startswith("Traceback") and "RuntimeError: disk gone" in event["exc"]


def test_text_tracebacks_are_indented_continuation_lines() -> None:
    out = io.StringIO()
    setup_logging("INFO", False, "node-1", stream=out)
    try:
        raise RuntimeError("disk\ngone")
    except RuntimeError:
        logging.getLogger("actors.storage.actor").exception("failed")
    first, *rest = out.getvalue().splitlines()
    assert first.endswith(" ERROR node-1 storage: failed")
    assert rest and all(line.startswith("  ") for line in rest)


def test_a_message_with_line_breaks_stays_one_text_line() -> None:
    out = io.StringIO()
    setup_logging("INFO", False, "node-1", stream=out)
    logging.getLogger("actors.http").info("bad id %r", "x\nFAKE INFO node-9 raft: forged")
    assert len(out.getvalue().splitlines()) == 1


def test_calling_twice_replaces_the_handler_instead_of_adding_one() -> None:
    first, second = io.StringIO(), io.StringIO()
    setup_logging("INFO", False, "node-1", stream=first)
    setup_logging("INFO", True, "node-1", stream=second)
    logging.getLogger("actors.raft.actor").info("once")
    assert first.getvalue() == ""
    (line,) = second.getvalue().splitlines()
    assert json.loads(line)["msg"] == "once"


def test_handlers_installed_by_others_are_kept() -> None:
    theirs = logging.StreamHandler(io.StringIO())
    logging.getLogger().addHandler(theirs)
    setup_logging("INFO", False, "node-1", stream=io.StringIO())
    setup_logging("INFO", False, "node-1", stream=io.StringIO())
    assert theirs in logging.getLogger().handlers


@pytest.mark.parametrize("json_lines", [False, True])
def test_the_cluster_secret_is_never_written(json_lines: bool) -> None:
    out = io.StringIO()
    setup_logging("INFO", json_lines, "node-1", stream=out, redact=[SECRET])
    logging.getLogger("actors.raft.transport").info("handshake with secret %s", SECRET)
    assert SECRET not in out.getvalue()
    assert "handshake with secret <hidden>" in out.getvalue()
