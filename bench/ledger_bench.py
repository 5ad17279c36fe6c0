"""CPU per usage record of the ledger's write to the database (issue 3's gateway figures).

Spools ``--records`` records per round through :class:`musubi.usage.UsageLedger` (the way
the gateway records each call), then times ``flush()`` (read the spool, insert the usage
rows, one hash-chained audit event per record, commit), on SQLite in a temporary
directory, with and without the audit events. Rounds after the first two are counted.

    .venv/bin/python bench/ledger_bench.py [--records 1600] [--rounds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from musubi.audit.signing import Signer
from musubi.storage.database import Database
from musubi.storage.migrate import upgrade
from musubi.tenancy import service
from musubi.tenancy.context import system_scope
from musubi.usage import UsageLedger, UsageRecord


async def per_record(audit: bool, records: int, rounds: int) -> float:
    """CPU seconds per record of the flushes after the first two rounds."""
    home = Path(tempfile.mkdtemp(prefix="musubi-ledger-bench-"))
    db = Database(f"sqlite+aiosqlite:///{home}/bench.db", audit_signer=Signer.generate())
    await upgrade(db)
    with system_scope():
        async with db.transaction() as s:
            tenant = await service.create_tenant(s, "bench")
    ledger = UsageLedger(db, home / "spool", every_s=3600, batch=10**9, audit=audit)
    await ledger.start()
    spent, written = 0.0, 0
    try:
        for i in range(rounds):
            for _ in range(records):
                ledger.record(
                    UsageRecord(
                        tenant_id=tenant.id,
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
            n = await ledger.flush()
            if i >= 2:
                spent += time.process_time() - started
                written += n
    finally:
        await ledger.stop()
        await db.dispose()
    return spent / written


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1600, help="records per flush")
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    print("| ledger write (SQLite) | CPU per record |\n|---|---|")
    for audit in (True, False):
        seconds = asyncio.run(per_record(audit, args.records, args.rounds))
        label = "usage row + audit event" if audit else "usage row only"
        print(f"| {label} | {seconds * 1e6:.0f} µs |", flush=True)


if __name__ == "__main__":
    main()
