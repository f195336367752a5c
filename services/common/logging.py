"""Structured logs: JSON when not on a terminal, readable when on one.

Every line carries the name of the logger that wrote it (`logger`: the module, e.g.
services.sender.deliverer, or a library's own logger), its level and a UTC timestamp, and whatever is
bound in structlog's contextvars (request id, account, message id, delivery id, trace id) where known.
Never log a secret: besides not logging them, database drivers (which narrate statements and their
parameters at DEBUG) are kept at WARNING, and anything shaped like a Standard Webhooks secret
("whsec_" + base64) is masked on its way out.
"""

from __future__ import annotations

import logging
import re
import sys

import structlog

#: Loggers that would print SQL parameters (an endpoint's secret among them) at DEBUG or INFO.
QUIET_LOGGERS = ("aiosqlite", "asyncpg", "sqlalchemy.engine", "sqlalchemy.pool")
#: A signing secret as stored and sent to the registry: "whsec_" + base64.
SECRET_PATTERN = re.compile(r"whsec_[A-Za-z0-9+/=_-]+")


class MaskingFormatter(structlog.stdlib.ProcessorFormatter):
    """The rendered line, with anything shaped like a signing secret masked (a safety net)."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        return SECRET_PATTERN.sub("whsec_***", line) if "whsec_" in line else line


def configure_logging(level: str = "info", fmt: str = "auto") -> None:
    """Routes structlog's and the standard library's log lines through one handler on stderr, at
    `level`, rendered as JSON or for a terminal (`fmt`: "json", "console" or "auto")."""
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: structlog.typing.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        # filter_by_level first: a line below the level costs one check, not the whole chain.
        processors=[structlog.stdlib.filter_by_level, *shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        MaskingFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Alembic narrates every start at INFO ("Context impl", "Will assume transactional DDL").
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
