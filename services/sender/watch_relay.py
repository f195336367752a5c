"""WatchDeliveries across replicas on PostgreSQL: LISTEN/NOTIFY on the sender's database (as the
registry's change stream does, services/registry/change_log.py).

Each replica LISTENs on two channels with an asyncpg connection of its own:

- WATCHING_CHANNEL: which accounts some replica watches. A replica announces an account when its
  first watcher subscribes, and all its watched accounts every ANNOUNCE_SECONDS; an announcement not
  renewed for FORGET_AFTER_SECONDS is forgotten. A replica that starts asks the others to announce.
- CHANGES_CHANNEL: a delivery's change, sent only for the accounts another replica watches (so an
  unwatched delivery costs nothing): the Delivery message itself when it fits in a notification
  (PostgreSQL's limit is 8,000 bytes), else its id, which the receiver reads from the database.

A replica ignores its own notifications. When the connection is lost, the relay reconnects and asks
again; changes made meanwhile reach only the watchers of their own replica.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time

import asyncpg
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from hooks.sender.v1 import deliveries_pb2
from services.common.logging import get_logger
from services.sender.conversion import delivery_to_proto
from services.sender.models import Delivery
from services.sender.watch_hub import WatchHub

log = get_logger(__name__)

WATCHING_CHANNEL = "hooks_sender_watching"
CHANGES_CHANNEL = "hooks_sender_changes"
ANNOUNCE_SECONDS = 5.0
FORGET_AFTER_SECONDS = 3 * ANNOUNCE_SECONDS
#: Largest payload sent (PostgreSQL refuses 8,000 bytes and more).
MAX_PAYLOAD = 7_900
RECONNECT_SECONDS = 1.0


class WatchRelay:
    def __init__(self, hub: WatchHub, engine: AsyncEngine, origin: str):
        self.hub = hub
        self.engine = engine
        self.origin = origin
        self._remote: dict[str, float] = {}  # account -> when its last announcement expires
        self._outgoing: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self._connection: asyncpg.Connection | None = None
        #: Changes received from other replicas and given to this one's watchers (tests read it).
        self.received = 0
        hub.relay = self

    # ---- what the hub asks

    def wants(self, account_id: str) -> bool:
        """Whether another replica watches the account."""
        expires = self._remote.get(account_id)
        if expires is None:
            return False
        if expires < time.monotonic():
            del self._remote[account_id]
            return False
        return True

    def watching(self, account_id: str) -> None:
        """This replica has begun watching the account: tell the others now."""
        self._send(WATCHING_CHANNEL, {"o": self.origin, "accounts": [account_id]})

    def forward(self, account_id: str, delivery: deliveries_pb2.Delivery) -> None:
        encoded = base64.b64encode(delivery.SerializeToString()).decode()
        message = {"o": self.origin, "a": account_id, "d": encoded}
        if len(encoded) + 200 > MAX_PAYLOAD:
            message = {"o": self.origin, "a": account_id, "id": delivery.id}
        self._send(CHANGES_CHANNEL, message)

    def _send(self, channel: str, message: dict) -> None:
        self._outgoing.put_nowait((channel, json.dumps(message, separators=(",", ":"))))

    # ---- lifecycle

    def start(self) -> WatchRelay:
        self._tasks = [
            asyncio.create_task(self._listen_forever(), name="sender-watch-relay"),
            asyncio.create_task(self._announce_forever(), name="sender-watch-announcer"),
        ]
        return self

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self.hub.relay = None

    async def _announce_forever(self) -> None:
        while True:
            await asyncio.sleep(ANNOUNCE_SECONDS)
            self._announce()

    def _announce(self) -> None:
        accounts = self.hub.accounts()
        chunk: list[str] = []
        size = 0
        for account in accounts:
            if size + len(account) + 4 > MAX_PAYLOAD - 100:
                self._send(WATCHING_CHANNEL, {"o": self.origin, "accounts": chunk})
                chunk, size = [], 0
            chunk.append(account)
            size += len(account) + 4
        if chunk:
            self._send(WATCHING_CHANNEL, {"o": self.origin, "accounts": chunk})

    async def _listen_forever(self) -> None:
        dsn = make_url(self.engine.url).set(drivername="postgresql").render_as_string(hide_password=False)
        while True:
            lost = asyncio.Event()
            connection: asyncpg.Connection | None = None
            try:
                connection = await asyncpg.connect(dsn, timeout=10)
                connection.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await connection.add_listener(WATCHING_CHANNEL, self._on_notification)
                await connection.add_listener(CHANGES_CHANNEL, self._on_notification)
                self._connection = connection
                self._send(WATCHING_CHANNEL, {"o": self.origin, "ask": True})
                self._announce()
                while not lost.is_set():
                    getter = asyncio.ensure_future(self._outgoing.get())
                    waiter = asyncio.ensure_future(lost.wait())
                    done, _ = await asyncio.wait({getter, waiter}, return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                    if getter not in done:
                        getter.cancel()
                        break
                    batch = [getter.result()]
                    while not self._outgoing.empty() and len(batch) < 100:
                        batch.append(self._outgoing.get_nowait())
                    await connection.executemany("SELECT pg_notify($1, $2)", batch)
                log.warning("watch relay connection lost; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - PostgreSQL away: watchers see this replica only meanwhile
                log.warning("watch relay cannot LISTEN", error=str(exc))
            finally:
                self._connection = None
                if connection is not None and not connection.is_closed():
                    connection.terminate()
            await asyncio.sleep(RECONNECT_SECONDS)

    def _on_notification(self, _connection: asyncpg.Connection, _pid: int, channel: str, payload: str) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            return
        if message.get("o") == self.origin:
            return
        if channel == WATCHING_CHANNEL:
            if message.get("ask"):
                self._announce()
            expires = time.monotonic() + FORGET_AFTER_SECONDS
            for account in message.get("accounts", ()):
                self._remote[account] = expires
            return
        account = message.get("a", "")
        if not self.hub.watching(account):
            return
        if "d" in message:
            delivery = deliveries_pb2.Delivery.FromString(base64.b64decode(message["d"]))
            self.received += 1
            self.hub.publish_here(account, delivery)
        elif "id" in message:
            task = asyncio.create_task(self._load_and_publish(account, message["id"]))
            self._tasks.append(task)
            task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task) -> None:
        if task in self._tasks:
            self._tasks.remove(task)

    async def _load_and_publish(self, account_id: str, delivery_id: str) -> None:
        try:
            async with self.engine.connect() as connection:
                row = (
                    (await connection.execute(select(Delivery.__table__).where(Delivery.__table__.c.id == delivery_id)))
                    .mappings()
                    .first()
                )
        except Exception as exc:  # noqa: BLE001 - the database briefly away: this change is not relayed
            log.warning("watch relay could not read a delivery", delivery_id=delivery_id, error=str(exc))
            return
        if row is not None and row["account_id"] == account_id:
            self.received += 1
            self.hub.publish_here(account_id, delivery_to_proto(Delivery(**row)))
