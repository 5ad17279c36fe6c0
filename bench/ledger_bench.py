"""CPU per usage record of the ledger's write to the database (issue 3's gateway figures).

Spools ``--records`` records per round through :class:`musubi.usage.UsageLedger` (the way
the gateway records each call), then times ``flush()`` (read the spool, insert the usage
rows, one hash-chained audit event per record, commit), on SQLite in a temporary
directory, with and without the audit events. Rounds after the first two are counted.
``--tenants N`` spreads each round's records over N tenants in rotation (issue 24: a
flush then extends, checks and signs N chain heads, not one).

    .venv/bin/python bench/ledger_bench.py [--records 1600] [--rounds 8] [--tenants 1,200]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

from musubi.audit.signing import Signer
from musubi.context import system_scope
from musubi.storage.database import Database
from musubi.storage.migrate import upgrade
from musubi.tenancy import service
from musubi.usage import UsageLedger, UsageRecord


async def per_record(
    audit: bool, records: int, rounds: int, tenants: int = 1, profile: str | None = None
) -> float:
    """CPU seconds per record of the flushes after the first two rounds."""
    home = Path(tempfile.mkdtemp(prefix="musubi-ledger-bench-"))
    db = Database(f"sqlite+aiosqlite:///{home}/bench.db", audit_signer=Signer.generate())
    await upgrade(db)
    with system_scope():
        async with db.transaction() as s:
            ids = [(await service.create_tenant(s, f"bench-{i}")).id for i in range(tenants)]
    ledger = UsageLedger(db, home / "spool", every_s=3600, batch=10**9, audit=audit)
    await ledger.start()
    spent, written = 0.0, 0
    profiler = cProfile.Profile() if profile else None
    try:
        for i in range(rounds):
            for j in range(records):
                ledger.record(
                    UsageRecord(
                        tenant_id=ids[j % tenants],
                        model="gpt-4o-mini",
                        provider="openai",
                        input_tokens=12,
                        output_tokens=7,
                        cost=0.0001,
                        latency_ms=12.3,
                        key_id="key_0123456789abcdef",
                        actor="key:msk_01234567",
                        request_id="0123456789abcdef0123456789abcdef",
                    )
                )
            started = time.process_time()
            if profiler is not None and i >= 2:
                profiler.enable()
            n = await ledger.flush()
            if profiler is not None:
                profiler.disable()
            if i >= 2:
                spent += time.process_time() - started
                written += n
    finally:
        await ledger.stop()
        await db.dispose()
    if profiler is not None and profile:
        profiler.dump_stats(profile)
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    return spent / written


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1600, help="records per flush")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--tenants", default="1", help="tenants in rotation, e.g. 1,200")
    parser.add_argument("--profile", default=None, help="cProfile the audited flushes here")
    args = parser.parse_args()
    print("| ledger write (SQLite) | tenants | CPU per record |\n|---|---|---|")
    for tenants in [int(t) for t in args.tenants.split(",")]:
        for audit in (True, False):
            profile = f"{args.profile}.{tenants}" if args.profile and audit else None
            seconds = asyncio.run(per_record(audit, args.records, args.rounds, tenants, profile))
            label = "usage row + audit event" if audit else "usage row only"
            print(f"| {label} | {tenants} | {seconds * 1e6:.0f} µs |", flush=True)


if __name__ == "__main__":
    main()
