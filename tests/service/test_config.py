"""Settings: defaults, validation with clear messages, secrets kept out of reprs."""

from __future__ import annotations

from pathlib import Path

import pytest

from ari_metaflows.config import ConfigError, ListenAddress, load_settings, redact_url


def test_defaults_follow_the_spec() -> None:
    settings = load_settings({})
    assert settings.ari_url == "http://127.0.0.1:8088"
    assert settings.ari_app == "metaflows"
    assert settings.database_url is None
    assert settings.api_listen == ListenAddress("127.0.0.1", 8000)
    assert settings.transfer_context == "default"
    assert settings.default_account_id is None
    assert settings.admin_token is None


def test_values_are_read() -> None:
    settings = load_settings(
        {
            "ARI_URL": "http://pbx:8088/",
            "ARI_USERNAME": "u",
            "ARI_PASSWORD": "p",
            "ARI_APP": "mf",
            "METAFLOWS_DATABASE_URL": "postgresql://u:pw@db/x",
            "METAFLOWS_API_LISTEN": "0.0.0.0:9000",
            "METAFLOWS_ADMIN_TOKEN": "a" * 20,
            "METAFLOWS_DEFAULT_ACCOUNT_ID": "acc1",
            "METAFLOWS_TRANSFER_CONTEXT": "transfers",
        }
    )
    assert settings.ari_url == "http://pbx:8088"
    assert settings.api_listen == ListenAddress("0.0.0.0", 9000)
    assert settings.default_account_id == "acc1"
    assert settings.transfer_context == "transfers"
    assert settings.database_url_for_logs == "postgresql://u:***@db/x"


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("METAFLOWS_API_LISTEN", "8000", "HOST:PORT"),
        ("METAFLOWS_API_LISTEN", "host:99999", "out of range"),
        ("METAFLOWS_DATABASE_URL", "mysql://x/y", "postgresql://"),
        ("ARI_URL", "ftp://pbx", "http://"),
        ("ARI_URL", "http://user:secret@pbx:8088", "must not carry credentials"),
        ("ARI_APP", "bad app", "ARI_APP"),
        ("METAFLOWS_ADMIN_TOKEN", "short", "at least 16"),
        ("METAFLOWS_DEFAULT_ACCOUNT_ID", "a/b", "METAFLOWS_DEFAULT_ACCOUNT_ID"),
        ("METAFLOWS_TRANSFER_CONTEXT", "a b", "METAFLOWS_TRANSFER_CONTEXT"),
        ("METAFLOWS_LOG_LEVEL", "loud", "METAFLOWS_LOG_LEVEL"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({name: value})
    assert fragment in str(info.value)
    assert "secret" not in str(info.value)


def test_secrets_are_not_in_repr() -> None:
    settings = load_settings(
        {
            "ARI_PASSWORD": "ari-secret",
            "METAFLOWS_ADMIN_TOKEN": "admin-secret-0123456789",
            "METAFLOWS_DATABASE_URL": "postgresql://u:db-secret@h/d",
        }
    )
    text = repr(settings)
    for secret in ("ari-secret", "admin-secret", "db-secret"):
        assert secret not in text


def test_redact_url() -> None:
    assert redact_url("postgresql://u:pw@h:5432/d") == "postgresql://u:***@h:5432/d"
    assert redact_url("postgresql://h/d") == "postgresql://h/d"


def test_config_file_is_overridden_by_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "settings.env"
    path.write_text(
        "# comment\n\nARI_APP=fromfile\nMETAFLOWS_TRANSFER_CONTEXT='ctx-file'\n", encoding="utf-8"
    )
    settings = load_settings({"ARI_APP": "fromenv"}, config_file=path)
    assert settings.ari_app == "fromenv"
    assert settings.transfer_context == "ctx-file"


def test_config_file_errors_point_at_the_line(tmp_path: Path) -> None:
    path = tmp_path / "settings.env"
    path.write_text("ARI_APP=x\nthis is not a setting\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"settings\.env:2"):
        load_settings({}, config_file=path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings({}, config_file=tmp_path / "missing.env")
