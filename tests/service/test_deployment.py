"""The deployment files agree with each other and with what the service needs.

No Docker engine runs here, so docker-compose.yml and the Dockerfile are checked as files: they
parse, and the values that must match across them (ports, users, passwords, shared volumes,
channel variables) do.
"""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path
from typing import Any

import yaml

from ari_metaflows.calls.identity import OWNER_VARS

from ..conftest import PROJECT_ROOT

CONF = PROJECT_ROOT / "asterisk-conf"


def asterisk_conf(name: str) -> dict[str, list[tuple[str, str]]]:
    """Sections of an Asterisk .conf file: name → [(key, value)] (templates merged in)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in (CONF / name).read_text().splitlines():
        line = raw.split(";", 1)[0].strip() if not raw.lstrip().startswith("exten") else raw
        line = line.strip()
        if not line:
            continue
        header = re.match(r"^\[([^\]]+)\](?:\(([^)]*)\))?$", line)
        if header:
            current = sections.setdefault(header.group(1), [])
            for template in filter(None, (header.group(2) or "").split(",")):
                if template != "!":
                    current.extend(sections.get(template, []))
            continue
        assert current is not None, f"{name}: {line!r} outside a section"
        key, sep, value = line.partition("=>" if "=>" in line else "=")
        assert sep, f"{name}: cannot read {line!r}"
        current.append((key.strip(), value.strip()))
    return sections


def values(section: list[tuple[str, str]], key: str) -> list[str]:
    return [v for k, v in section if k == key]


def compose() -> dict[str, Any]:
    data = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def default_of(value: str) -> str:
    """`${NAME:-default}` → default."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_compose_has_the_three_services_with_health_checks() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "asterisk", "metaflows"}
    for name, service in services.items():
        assert "healthcheck" in service, name
    assert services["metaflows"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "asterisk": {"condition": "service_healthy"},
    }
    assert services["metaflows"]["build"] == "."
    assert "./asterisk-conf:/etc/asterisk:ro" in services["asterisk"]["volumes"]


def test_compose_wiring_matches_asterisk_conf_and_postgres() -> None:
    services = compose()["services"]
    env = services["metaflows"]["environment"]
    ari_url = urllib.parse.urlsplit(env["ARI_URL"])
    http = dict(asterisk_conf("http.conf")["general"])
    assert http["enabled"] == "yes"
    assert http["bindaddr"] == "127.0.0.1"  # ARI stays on loopback
    assert ari_url.port == int(http["bindport"])
    user = asterisk_conf("ari.conf")[env["ARI_USERNAME"]]
    assert values(user, "type") == ["user"]
    assert values(user, "password") == [default_of(env["ARI_PASSWORD"])]
    assert env["ARI_APP"] == "metaflows"
    database = urllib.parse.urlsplit(default_of(env["METAFLOWS_DATABASE_URL"]))
    postgres = services["postgres"]["environment"]
    assert database.username == postgres["POSTGRES_USER"]
    assert database.path.lstrip("/") == postgres["POSTGRES_DB"]
    assert database.password == default_of(postgres["POSTGRES_PASSWORD"])
    assert f"127.0.0.1:{database.port}:5432" in services["postgres"]["ports"]
    assert ":?" in env["METAFLOWS_ADMIN_TOKEN"]  # compose refuses to start without one
    recordings = [v.split(":")[1] for v in services["asterisk"]["volumes"] if "recordings" in v]
    assert recordings
    assert any(recordings[0] in v for v in services["metaflows"]["volumes"])


def test_dockerfile_is_pinned_unprivileged_and_runs_the_service() -> None:
    text = (PROJECT_ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim-bookworm$", text, re.M)
    assert "-c requirements.lock" in text
    assert re.search(r"^USER metaflows$", text, re.M)
    assert 'ENTRYPOINT ["ari-metaflows"]' in text
    assert 'CMD ["serve"]' in text
    assert "HEALTHCHECK" in text
    for needed in ("pyproject.toml", "requirements.lock", "ari_metaflows", "migrations"):
        assert needed in text
    assert not re.search(r"(PASSWORD|TOKEN)=\S", text)


def test_ari_conf_sends_the_owner_variables_in_every_snapshot() -> None:
    general = dict(asterisk_conf("ari.conf")["general"])
    assert general["enabled"] == "yes"
    assert set(general["channelvars"].split(",")) == set(OWNER_VARS)


def test_dialplan_enters_dial_mode_with_a_plain_dial_fallback() -> None:
    internal = asterisk_conf("extensions.conf")["internal"]
    lines = " ".join(v for _, v in internal)
    assert "Stasis(metaflows,dial,PJSIP/${EXTEN}" in lines
    assert '"${STASISSTATUS}" = "FAILED"' in lines
    assert "(fallback),Dial(PJSIP/${EXTEN}" in lines
    sections = asterisk_conf("extensions.conf")
    for context in (
        "default",
        "metaflows-test",
        "metaflows-test-phones",
        "metaflows-test-transfer",
    ):
        assert context in sections, context


def test_pjsip_phones_set_owners_and_send_rfc4733_digits() -> None:
    sections = asterisk_conf("pjsip.conf")
    endpoints = {
        name: body
        for name, body in sections.items()
        if values(body, "type") and values(body, "type")[0] == "endpoint" and name != "phone"
    }
    assert endpoints
    for name, body in endpoints.items():
        assert values(body, "dtmf_mode") == ["rfc4733"], name
        if name.startswith("bench-"):  # ./dev bench --real's sipp sides (issue 20)
            assert values(body, "context")[-1] == "metaflows-bench", name  # over the template
            continue
        assert values(body, "context") == ["internal"], name
        owner = dict(v.split("=", 1) for v in values(body, "set_var"))
        assert owner.get("METAFLOWS_ACCOUNT_ID"), name
    assert values(sections["transport-udp"], "protocol") == ["udp"]


def test_every_conf_file_is_readable() -> None:
    for path in CONF.glob("*.conf"):
        assert isinstance(asterisk_conf(path.name), dict)
        assert Path(path).read_text().endswith("\n")


def test_park_transfer_and_ringing_tone_are_wired() -> None:
    """What transfer and park rely on exists, under the names the service's defaults use."""
    from ari_metaflows.config import Settings

    defaults = Settings()
    env = compose()["services"]["metaflows"]["environment"]
    sections = asterisk_conf("extensions.conf")
    assert env["METAFLOWS_TRANSFER_CONTEXT"] in sections
    assert env["METAFLOWS_PARK_TIMEOUT_CONTEXT"] == defaults.park_timeout_context
    timeout_lines = " ".join(v for _, v in sections[defaults.park_timeout_context])
    assert "Dial(${METAFLOWS_PARKER}" in timeout_lines
    internal = " ".join(v for _, v in sections["internal"])
    assert "Stasis(metaflows,unpark,${EXTEN})" in internal
    assert "Playback(pbx-invalidpark)" in internal
    first, last = env["METAFLOWS_PARK_SLOTS"].split("-")
    assert (first[0], len(first), len(last)) == ("7", 3, 3)  # dialled through _7XX
    tones = asterisk_conf("indications.conf")
    country = values(tones["general"], "country")[0]
    assert values(tones[country], "ring"), "tone:ring needs a ring tone in the default zone"


def test_the_journal_directory_is_a_volume() -> None:
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    data_dir = re.search(r"METAFLOWS_DATA_DIR=(\S+)", dockerfile)
    assert data_dir is not None
    volumes = compose()["services"]["metaflows"]["volumes"]
    assert any(v.endswith(":" + data_dir.group(1)) for v in volumes)


# ARI event names of the Stasis message types stasis.conf may decline (main/stasis_channels.c).
_ARI_EVENT_OF_MESSAGE_TYPE = {"ast_channel_varset_type": "ChannelVarset"}


def test_declined_message_types_are_events_the_service_never_asks_for() -> None:
    """stasis.conf declines messages to save Asterisk's CPU: never one the app listens to."""
    from ari_metaflows.calls.engine import CORE_EVENTS
    from ari_metaflows.features import build_registry

    declined = values(asterisk_conf("stasis.conf")["declined_message_types"], "decline")
    assert declined, "stasis.conf declines nothing"
    unknown = set(declined) - set(_ARI_EVENT_OF_MESSAGE_TYPE)
    assert not unknown, f"say which ARI event these are: {unknown}"
    wanted = CORE_EVENTS | set(build_registry().by_event)
    for message_type in declined:
        assert _ARI_EVENT_OF_MESSAGE_TYPE[message_type] not in wanted, message_type
