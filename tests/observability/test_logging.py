"""Log lines as an operator gets them: one JSON object per line off a terminal, carrying what is bound
in the context, with signing secrets masked and database drivers' statement logs kept out."""

from __future__ import annotations

import logging

import structlog

from services.common.logging import get_logger

SECRET = "whsec_bWFza2VkU2VjcmV0Qnl0ZXNGb3JUaGVMb2dUZXN0"


def test_lines_are_json_with_the_bound_context(captured_logs):
    log = get_logger("tests.observability")
    with structlog.contextvars.bound_contextvars(message_id="m-1", delivery_id="d-1", account_id="000001"):
        log.info("delivery attempt", http_status=200)
    log.info("after")
    first, after = captured_logs.lines()[-2:]
    assert first["event"] == "delivery attempt"
    assert (first["message_id"], first["delivery_id"], first["account_id"]) == ("m-1", "d-1", "000001")
    assert first["level"] == "info" and first["timestamp"].endswith("Z")
    assert "message_id" not in after  # unbound when the work ended


def test_lines_name_the_logger_that_wrote_them(captured_logs):
    get_logger("services.sender.deliverer").info("from structlog")
    logging.getLogger("some.library").warning("from the standard library")
    structlog_line, library_line = captured_logs.lines()[-2:]
    assert (structlog_line["event"], structlog_line["logger"]) == ("from structlog", "services.sender.deliverer")
    assert (library_line["event"], library_line["logger"]) == ("from the standard library", "some.library")


def test_a_secret_logged_by_mistake_is_masked(captured_logs):
    get_logger("tests.observability").warning("oops", endpoint={"secret": SECRET})
    logging.getLogger("some.library").error("config: %s", SECRET)
    assert SECRET.removeprefix("whsec_") not in captured_logs.text
    assert captured_logs.text.count("whsec_***") == 2


def test_database_drivers_do_not_narrate_statements_even_at_debug(captured_logs):
    for name in ("aiosqlite", "sqlalchemy.engine", "asyncpg"):
        logging.getLogger(name).debug("executing INSERT INTO endpoints ... secret")
        logging.getLogger(name).info("INSERT INTO endpoints ... secret")
    assert "INSERT INTO endpoints" not in captured_logs.text
    logging.getLogger("services.sender").debug("debug is on")
    assert "debug is on" in captured_logs.text
