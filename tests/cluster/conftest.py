"""The ``cluster`` fixture of the process tests (tests/cluster/processes.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .processes import Cluster, running_cluster


@pytest.fixture
async def cluster(database_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    async with running_cluster(database_url, tmp_path) as running:
        yield running
