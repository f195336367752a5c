"""A real SMTP server on loopback for tests (aiosmtpd), keeping every e-mail it accepts.

async with smtp_inbox() as inbox:               # serving on 127.0.0.1:inbox.port
    ... sender_smtp_port=inbox.port ...
    await eventually(lambda: inbox.messages)    # [Envelope]: mail_from, rcpt_tos, content
    inbox.emails()                              # [(mail_from, rcpt_tos, email.message.EmailMessage)]
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

from services.common.broker import free_port


class SmtpInbox:
    def __init__(self) -> None:
        self.messages: list[Envelope] = []
        self.port = 0

    async def handle_DATA(self, server, session, envelope: Envelope) -> str:
        self.messages.append(envelope)
        return "250 OK"

    def emails(self) -> list[tuple[str, list[str], EmailMessage]]:
        """Each e-mail accepted, as (MAIL FROM, RCPT TOs, the parsed message), in order."""
        return [
            (envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(envelope.content, policy=policy.default))
            for envelope in self.messages
        ]

    def to(self, address: str) -> list[Envelope]:
        """The e-mails accepted for `address`, in order."""
        return [message for message in self.messages if address in message.rcpt_tos]


@contextlib.asynccontextmanager
async def smtp_inbox() -> AsyncIterator[SmtpInbox]:
    inbox = SmtpInbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    await asyncio.to_thread(controller.start)
    inbox.port = controller.port
    try:
        yield inbox
    finally:
        await asyncio.to_thread(controller.stop)
