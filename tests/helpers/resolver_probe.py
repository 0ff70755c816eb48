"""A second service instance, reduced to its resolver, for cross-process cache tests.

Reads commands on stdin, one per line, and answers one JSON line each:
  ``resolve ACCOUNT USER DEVICE`` → ``{"numbers": [...], "patterns": [...], "loads": N}``
where ``loads`` counts database loads so far (it must not grow when the cache is used).
Prints ``ready`` once it listens for changes.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterable
from typing import Any

from ari_metaflows.db.database import Database
from ari_metaflows.lifecycle import Lifecycle
from ari_metaflows.metaflows.resolver import LegIdentity, MetaflowResolver
from ari_metaflows.metaflows.store import MetaflowStore, Owner


class CountingStore(MetaflowStore):
    loads = 0

    async def load(self, owners: Iterable[Owner]) -> dict[Owner, dict[str, Any] | None]:
        self.loads += 1
        return await super().load(owners)


async def main(url: str) -> None:
    async with Lifecycle("resolver probe") as life:
        db = Database(url)
        await db.open(max_size=2)
        life.push("database pool", db.close)
        store = CountingStore(db)
        resolver = MetaflowResolver(store, listen_url=url)
        await resolver.start()
        life.push("metaflow listener", resolver.stop)
        await asyncio.wait_for(resolver.listening.wait(), 10)
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := (await reader.readline()).decode().split():
            if line[0] == "resolve":
                account, user, device = (None if v == "-" else v for v in line[1:4])
                assert account is not None
                effective = await resolver.resolve(LegIdentity(account, user, device))
                print(
                    json.dumps(
                        {
                            "numbers": {k: n.module for k, n in effective.numbers.items()},
                            "patterns": [p.source for p in effective.patterns],
                            "loads": store.loads,
                        }
                    ),
                    flush=True,
                )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
