"""Every RETENTION_* setting is checked at start: a bad value exits 2 naming the variable and
its valid values, never a traceback from deeper down (a log level of LOUD once was one)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support import FIXTURE_CONFIG
from worker.cli import main
from worker.errors import SettingsError
from worker.settings import Settings, load_env_file, read_secret

BAD_VALUES = [
    ("RETENTION_LOG_LEVEL", "LOUD", "set one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ("RETENTION_LOG_LEVEL", "WARN", "set one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ("RETENTION_LOG_LEVEL", "10", "set one of DEBUG"),
    ("RETENTION_LOG_FORMAT", "xml", "set one of json, console, auto"),
    ("RETENTION_HTTP_PORT", "http", "set a whole number from 0 to 65535"),
    ("RETENTION_HTTP_PORT", "70000", "set a whole number from 0 to 65535"),
    ("RETENTION_HTTP_PORT", "-1", "set a whole number from 0 to 65535"),
    ("RETENTION_HTTP_PORT", " 9464", "set a whole number from 0 to 65535"),
    ("RETENTION_HTTP_PORT", "9_464", "set a whole number from 0 to 65535"),
    ("RETENTION_HTTP_PORT", "٩٤٦٤", "set a whole number from 0 to 65535"),  # Arabic-Indic digits
    ("RETENTION_HTTP_PORT", "9" * 5000, "set a whole number from 0 to 65535"),
    ("RETENTION_STOP_GRACE_SECONDS", "0", "set a whole number from 1 to 3600"),
    ("RETENTION_STOP_GRACE_SECONDS", "1.5", "set a whole number from 1 to 3600"),
    ("RETENTION_STOP_GRACE_SECONDS", "1" + "0" * 30, "set a whole number from 1 to 3600"),
    ("RETENTION_HTTP_HOST", "local host", "set an address or host name to listen on"),
    ("RETENTION_HTTP_HOST", "x" * 300, "set an address or host name to listen on"),
    ("RETENTION_STATE_URL", "not a url", "set a database URL such as"),
]


@pytest.mark.parametrize(("name", "value", "fix"), BAD_VALUES)
def test_a_bad_setting_is_refused_naming_the_variable(name: str, value: str, fix: str) -> None:
    """Settings.from_env raises SettingsError with the variable's name and its valid values."""
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    assert str(caught.value).startswith(f"{name} is ")
    assert fix in str(caught.value)
    assert len(str(caught.value)) < 300  # a 5000-digit value is not echoed back whole


@pytest.mark.parametrize(("name", "value", "fix"), BAD_VALUES)
def test_the_command_exits_2_with_the_message_and_no_traceback(
    name: str, value: str, fix: str
) -> None:
    """Through the real command: exit 2, `error: NAME is …; fix`, no traceback."""
    result = CliRunner().invoke(
        main,
        ["validate", "--offline", "--config", str(FIXTURE_CONFIG)],
        env={name: value},
        catch_exceptions=True,
    )
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"error: {name} is " in result.output
    assert fix in result.output
    assert "Traceback" not in result.output


def test_valid_settings_are_read_as_written() -> None:
    """Lower-case levels and formats are accepted; empty means the default."""
    settings = Settings.from_env(
        {
            "RETENTION_LOG_LEVEL": "debug",
            "RETENTION_LOG_FORMAT": "JSON",
            "RETENTION_HTTP_PORT": "0",
            "RETENTION_HTTP_HOST": "::",
            "RETENTION_STOP_GRACE_SECONDS": "",
            "RETENTION_CONFIG_DIR": "",
        }
    )
    assert (settings.log_level, settings.log_format) == ("DEBUG", "json")
    assert (settings.http_port, settings.http_host) == (0, "::")
    assert settings.stop_grace_seconds == 20.0
    assert settings.config_dir == Path("config")


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (None, "not a regular file"),  # a named pipe: must not block
        (b"s3cret-\xe9\n", "not UTF-8 text"),
        (b"x" * (64 * 1024 + 1), "larger than 64 KiB"),
    ],
)
def test_a_secret_file_that_is_no_secret_is_refused(
    tmp_path: Path, content: bytes | None, why: str
) -> None:
    """RETENTION_PEPPER_FILE naming a pipe, a binary or a huge file: a SettingsError, at once."""
    path = tmp_path / "pepper"
    if content is None:
        os.mkfifo(path)
    else:
        path.write_bytes(content)
    with pytest.raises(SettingsError, match=why) as caught:
        read_secret({"RETENTION_PEPPER_FILE": str(path)}, "RETENTION_PEPPER")
    assert str(caught.value).startswith(f"RETENTION_PEPPER_FILE names {path}")


def test_an_env_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    """--env-file with Latin-1 bytes: a SettingsError saying to save it as UTF-8."""
    path = tmp_path / "worker.env"
    path.write_bytes("RETENTION_PEPPER=caf\xe9\n".encode("latin-1"))
    with pytest.raises(SettingsError, match="is not UTF-8 text; save it as UTF-8"):
        load_env_file(path, {})
