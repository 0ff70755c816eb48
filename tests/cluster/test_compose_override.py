"""``docker-compose.cluster.yml`` (no Docker engine here: checked as a file): a second
instance for the same Asterisk, in cluster mode, with its own id, port and data volume."""

from __future__ import annotations

from typing import Any

import yaml

from ..conftest import PROJECT_ROOT


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((PROJECT_ROOT / name).read_text())
    return data


def test_the_override_adds_a_standby_instance_on_the_same_database() -> None:
    base = load("docker-compose.yml")["services"]
    override = load("docker-compose.cluster.yml")["services"]
    first = {**base["metaflows"]["environment"], **override["metaflows"]["environment"]}
    second = override["metaflows-2"]["environment"]
    for env in (first, second):
        assert env["METAFLOWS_CLUSTER"] == "on"
        assert env["METAFLOWS_ASTERISKS"] == "default=http://127.0.0.1:8088"
    assert first["METAFLOWS_INSTANCE_ID"] != second["METAFLOWS_INSTANCE_ID"]
    assert first["METAFLOWS_API_LISTEN"] != second["METAFLOWS_API_LISTEN"]
    for key in ("METAFLOWS_DATABASE_URL", "ARI_APP", "ARI_USERNAME", "METAFLOWS_PARK_SLOTS"):
        assert second[key] == first[key], key
    assert "8001" in str(override["metaflows-2"]["healthcheck"]["test"])
    assert set(override["metaflows-2"]["depends_on"]) == {"postgres", "asterisk"}
