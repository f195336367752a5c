"""Latency at ordinary load: produce -> receipt at a steady rate, far from saturation, beside a bare
consumer's on the same broker at the same rate.

    flock /tmp/hooks-bench.lock .venv/bin/python bench/bench_latency.py [--rates 200,1000] [--seconds 15]

It starts the system as bench/bench_pipeline.py does (`hooks run`, embedded broker, SQLite), one
account, one webhook endpoint, and publishes with hooks_client at a steady `rate` per second for
`seconds` (each message carries its produce time), then prints p50/p99/max of produce -> receipt.

The bare consumer is one process that consumes and POSTs each message to the same receiver, with the
matcher's fetch settings (fetch.wait.max.ms as HOOKS_MATCHER_FETCH_WAIT_MAX_MS, waiting only for the
first message of a batch): what the broker and one HTTP hop cost, without validation, routing, the
queue, signing or retries. Target: pipeline p99 < 100 ms at 200/s and 1,000/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from aiohttp import ClientSession, ClientTimeout, TCPConnector  # noqa: E402
from bench_pipeline import ACCOUNT, APPLICATION, EVENT_TYPE, Receiver, Run, System, databases  # noqa: E402
from confluent_kafka import Consumer  # noqa: E402

from hooks_client import Publisher  # noqa: E402
from services.common.broker import ensure_topics  # noqa: E402
from services.matcher.settings import MatcherSettings  # noqa: E402

IN_FLIGHT = 64


def stored_latencies(sender_db: Path, ids: set[str]) -> dict:
    """produce -> stored by the sender (broker, matcher, hand-off), from the sender's SQLite file:
    what the pipeline's total splits into before the sender's own part (stored -> received)."""
    import json
    import sqlite3
    from datetime import UTC, datetime

    connection = sqlite3.connect(sender_db)
    try:
        rows = connection.execute("SELECT event_id, event, created_at FROM deliveries").fetchall()
    finally:
        connection.close()
    waits = []
    for event_id, event, created_at in rows:
        if event_id in ids:
            stored = datetime.fromisoformat(created_at).replace(tzinfo=UTC).timestamp()
            waits.append((stored - json.loads(event)["message"]["produced_at"]) * 1000)
    waits.sort()
    return {"p50": statistics.median(waits), "p99": waits[min(len(waits) - 1, int(len(waits) * 0.99))]}


def produce_steadily(publisher: Publisher, rate: float, seconds: float) -> set[str]:
    """`rate` messages a second for `seconds`, each sent at its own time (not in bursts), with a
    publisher that is already connected: a new one's first messages wait for its connection and
    metadata (300-500 ms for the first 40 here), which is the producer starting, not the pipeline."""
    ids: set[str] = set()
    count = int(rate * seconds)
    futures = []
    start = time.monotonic()
    for number in range(count):
        due = start + number / rate
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        message_id = str(uuid.uuid4())
        futures.append(
            publisher.submit(
                id=message_id,
                application=APPLICATION,
                event_type=EVENT_TYPE,
                level="",
                account_id=ACCOUNT,
                message={"number": number, "produced_at": time.time()},
            )  # fmt: skip
        )
        ids.add(message_id)
    for future in futures:
        future.exception(timeout=60)
    failures = [str(f.exception()) for f in futures if f.exception()]
    if failures:
        raise RuntimeError(f"producing failed: {failures[:3]}")
    return ids


async def measure(receiver: Receiver, publisher: Publisher, rate: float, seconds: float) -> dict:
    run = Run()
    receiver.run = run
    try:
        ids = await asyncio.to_thread(produce_steadily, publisher, rate, seconds)
        run.expected = ids
        run.check()
        await asyncio.wait_for(run.done.wait(), 120)
    finally:
        receiver.run = None
    latencies = sorted((received - produced) * 1000 for received, produced in (run.receipts[i] for i in ids))
    return {
        "ids": ids,
        "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "max": latencies[-1],
        "count": len(latencies),
    }


async def bare_worker(bootstrap: str, topic: str, url: str) -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-latency-bare",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "fetch.wait.max.ms": MatcherSettings().matcher_fetch_wait_max_ms,
            "log_level": 0,
        }
    )
    consumer.subscribe([topic])
    slots = asyncio.Semaphore(IN_FLIGHT)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    def consume() -> list:
        messages = consumer.consume(1, 0.2)
        if messages:
            messages.extend(consumer.consume(499, 0))
        return messages

    async with ClientSession(connector=TCPConnector(limit=IN_FLIGHT), timeout=ClientTimeout(total=15)) as session:

        async def post(body: bytes) -> None:
            try:
                async with session.post(url, data=body, headers={"content-type": "application/json"}) as response:
                    await response.read()
            finally:
                slots.release()

        print("ready", flush=True)
        while not stop.is_set():
            for message in await asyncio.to_thread(consume):
                if message.error() is None:
                    await slots.acquire()
                    asyncio.create_task(post(message.value()))
    consumer.close()


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def main(rates: list[float], seconds: float) -> None:
    print(f"load average before: {load()} on {os.cpu_count()} cores")
    receiver = Receiver()
    await receiver.start()
    bare = None
    results = {}
    try:
        async with databases("sqlite") as urls:
            with tempfile.TemporaryDirectory(prefix="hooks-bench-") as tmp:
                system = System(Path(tmp), urls)
                try:
                    await asyncio.to_thread(system.start)
                    await system.configure(f"http://127.0.0.1:{receiver.port}/pipeline")
                    await asyncio.to_thread(
                        ensure_topics, {"bootstrap.servers": system.bootstrap}, ["bench.latency"], 4
                    )
                    bare = subprocess.Popen(
                        [sys.executable, __file__, "--bare-worker", system.bootstrap, "bench.latency",
                         f"http://127.0.0.1:{receiver.port}/bare"],
                        cwd=REPO, stdout=subprocess.PIPE, text=True,
                    )  # fmt: skip
                    await asyncio.to_thread(bare.stdout.readline)
                    config = {"linger.ms": 0, "log_level": 0}
                    with (
                        Publisher(
                            bootstrap_servers=system.bootstrap, topic="hooks.outbox", config=config
                        ) as to_pipeline,
                        Publisher(bootstrap_servers=system.bootstrap, topic="bench.latency", config=config) as to_bare,
                    ):
                        print("warming up (consumer groups joining, publishers connecting)...", flush=True)
                        await measure(receiver, to_pipeline, 20, 1)
                        await measure(receiver, to_bare, 20, 1)
                        for rate in rates:
                            print(f"{rate:g}/s for {seconds:g} s...", flush=True)
                            pipeline = await measure(receiver, to_pipeline, rate, seconds)
                            pipeline["load"] = load()
                            pipeline["stored"] = stored_latencies(Path(tmp) / "sender.db", pipeline["ids"])
                            plain = await measure(receiver, to_bare, rate, seconds)
                            plain["load"] = load()
                            results[rate] = (pipeline, plain)
                finally:
                    if bare is not None:
                        bare.terminate()
                        bare.wait(10)
                    await asyncio.to_thread(system.stop)
    finally:
        await receiver.runner.cleanup()
    print()
    print(f"{'rate/s':>7} | {'pipeline p50':>12} {'p99':>6} {'max':>6} {'(load)':>16} | "
          f"{'bare p50':>8} {'p99':>6} {'max':>6} {'(load)':>16}   (ms)")  # fmt: skip
    for rate, (p, b) in results.items():
        print(f"{rate:>7g} | {p['p50']:>12.1f} {p['p99']:>6.1f} {p['max']:>6.1f} {p['load']:>16} | "
              f"{b['p50']:>8.1f} {b['p99']:>6.1f} {b['max']:>6.1f} {b['load']:>16}")  # fmt: skip
    print()
    print("of which produce -> stored by the sender (broker, matcher, hand-off), ms:")
    for rate, (p, _) in results.items():
        print(f"{rate:>7g} | p50 {p['stored']['p50']:.1f}  p99 {p['stored']['p99']:.1f}")
    print(f"load average after: {load()}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--bare-worker":
        asyncio.run(bare_worker(*sys.argv[2:]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="200,1000", help="comma-separated messages per second")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long each rate lasts")
    arguments = parser.parse_args()
    asyncio.run(main([float(rate) for rate in arguments.rates.split(",")], arguments.seconds))
