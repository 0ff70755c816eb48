"""Configuration of the Asterisk servers an instance may serve and of the cluster (issue 18)."""

from __future__ import annotations

import os
import socket

import pytest

from ari_metaflows.config import AsteriskServer, ConfigError, load_settings


def test_without_metaflows_asterisks_ari_url_is_the_one_default_server() -> None:
    settings = load_settings(
        {"ARI_URL": "http://pbx:8088", "ARI_USERNAME": "u", "ARI_PASSWORD": "p"}
    )
    assert settings.asterisk_servers == (AsteriskServer("default", "http://pbx:8088", "u", "p"),)
    assert not settings.cluster
    assert settings.instance_id == f"{socket.gethostname()}-{os.getpid()}"


def test_several_servers_share_credentials_unless_a_server_has_its_own() -> None:
    settings = load_settings(
        {
            "METAFLOWS_ASTERISKS": "east=http://10.0.0.1:8088, west-2=https://10.0.0.2:8089/",
            "ARI_USERNAME": "shared",
            "ARI_PASSWORD": "shared-pw",
            "ARI_USERNAME_WEST_2": "w",
            "ARI_PASSWORD_WEST_2": "w-pw",
            "METAFLOWS_INSTANCE_ID": "node-a",
            "METAFLOWS_CLUSTER": "on",
        }
    )
    assert settings.asterisk_servers == (
        AsteriskServer("east", "http://10.0.0.1:8088", "shared", "shared-pw"),
        AsteriskServer("west-2", "https://10.0.0.2:8089", "w", "w-pw"),
    )
    assert settings.instance_id == "node-a"
    assert settings.cluster
    assert "w-pw" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"METAFLOWS_ASTERISKS": "east"}, "METAFLOWS_ASTERISKS"),
        ({"METAFLOWS_ASTERISKS": "bad name=http://x:1"}, "METAFLOWS_ASTERISKS"),
        ({"METAFLOWS_ASTERISKS": "a=http://x:1,a=http://y:1"}, "twice"),
        ({"METAFLOWS_ASTERISKS": "a=ftp://x"}, "METAFLOWS_ASTERISKS (a)"),
        ({"METAFLOWS_ASTERISKS": " , "}, "names no server"),
        ({"METAFLOWS_INSTANCE_ID": "has space"}, "METAFLOWS_INSTANCE_ID"),
        ({"METAFLOWS_CLUSTER": "maybe"}, "METAFLOWS_CLUSTER"),
    ],
)
def test_bad_cluster_settings_name_the_variable(env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError, match=names.replace("(", r"\(").replace(")", r"\)")):
        load_settings(env)
