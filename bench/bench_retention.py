"""Retention under load: five passes of 20,000 messages into one sender database, with a retention
short enough that the pruner deletes earlier passes' deliveries while later ones run.

    flock /tmp/hooks-bench.lock .venv/bin/python bench/bench_retention.py [--passes 5] [--size 20000]
        [--retention-seconds 20] [--database sqlite|postgresql]

It starts the system as bench/bench_pipeline.py does (`hooks run`, embedded broker), with
HOOKS_SENDER_RETENTION_SECONDS and a pruner pass every 2 s, and for each pass prints deliveries/s,
the sender's CPU milliseconds per delivery, and how many deliveries the sender's database holds after
it. Target: the last pass within 5 % of the first (rate and sender CPU per delivery).
`--retention-seconds 0` keeps everything (the default 30 days), for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_pipeline import Receiver, System, databases, measure, measure_with_cpu, service_pids  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from services.common.db import create_engine  # noqa: E402
from services.sender.models import Delivery  # noqa: E402


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def kept(url: str) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return (await connection.execute(select(func.count()).select_from(Delivery.__table__))).scalar_one()
    finally:
        await engine.dispose()


async def main(passes: int, size: int, retention: float, database: str) -> None:
    print(f"load average before: {load()} on {os.cpu_count()} cores")
    receiver = Receiver()
    await receiver.start()
    rows = []
    try:
        async with databases(database) as urls:
            with tempfile.TemporaryDirectory(prefix="hooks-bench-") as tmp:
                if retention > 0:
                    urls = {
                        **urls,
                        "HOOKS_SENDER_RETENTION_SECONDS": str(retention),
                        "HOOKS_SENDER_RETENTION_INTERVAL_SECONDS": "2",
                    }
                system = System(Path(tmp), urls)
                sender_url = urls.get("HOOKS_SENDER_DATABASE_URL", f"sqlite:///{Path(tmp) / 'sender.db'}")
                try:
                    await asyncio.to_thread(system.start)
                    assert system.process is not None
                    pids = service_pids(system.process.pid)
                    await system.configure(f"http://127.0.0.1:{receiver.port}/pipeline")
                    print("warming up (consumer group joining)...", flush=True)
                    await measure(receiver, system.bootstrap, "hooks.outbox", 20)
                    for number in range(1, passes + 1):
                        result = await measure_with_cpu(receiver, system.bootstrap, "hooks.outbox", size, pids)
                        result["kept"] = await kept(sender_url)
                        result["load"] = load()
                        rows.append(result)
                        print(f"pass {number}: {result['rate']:.0f}/s, sender {result['cpu'].get('sender', 0):.3f} ms"
                              f" per delivery, {result['kept']} kept, load {result['load']}", flush=True)  # fmt: skip
                finally:
                    await asyncio.to_thread(system.stop)
    finally:
        await receiver.runner.cleanup()
    first, last = rows[0], rows[-1]
    print()
    print(
        f"retention {retention:g} s ({database}): last/first rate {last['rate'] / first['rate']:.3f}, "
        f"sender CPU per delivery {last['cpu']['sender'] / first['cpu']['sender']:.3f}"
    )
    print(f"load average after: {load()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--retention-seconds", type=float, default=20.0)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.passes, arguments.size, arguments.retention_seconds, arguments.database))
