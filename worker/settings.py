"""Process settings from the environment (RETENTION_*); secrets also from *_FILE.

Nothing here reads the environment at import time: `Settings.from_env(os.environ)`. Every
setting is checked there, so a bad value stops the command with exit 2 and a message naming
the variable, its valid values and the fix; never a traceback from deeper down. An empty
variable counts as unset.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from connectors.base import Timeouts
from connectors.masking import safe_url
from worker.checkpoints import CheckpointError, Signer
from worker.config.files import NotARegularFile, read_regular
from worker.errors import SettingsError
from worker.logging import FORMATS, LEVELS
from worker.retry import RetryPolicy
from worker.state import StateStore

DEFAULT_STATE_URL = "sqlite:///.retention/state.db"
MIN_PEPPER_BYTES = 16
MAX_SECRET_BYTES = 64 * 1024  # a URL or a pepper; more is the wrong file (or /dev/zero)
# Product sessions: the longest wait for a lock, and the longest statement (seconds).
DEFAULT_LOCK_TIMEOUT_SECONDS = 30
DEFAULT_STATEMENT_TIMEOUT_SECONDS = 600
# A pair's lease (worker/leases.py): renewed every third of it while its run works.
DEFAULT_LEASE_SECONDS = 60
# An idle run's schema check and "nothing due" may be another run's read of the same
# database this recent.
DEFAULT_SCHEMA_REUSE_SECONDS = 30
MIN_LEASE_SECONDS = 2
_DIGITS = re.compile(r"[0-9]{1,9}")
_HOST = re.compile(r"[A-Za-z0-9._:\-\[\]%]{1,255}")


def read_secret(env: Mapping[str, str], name: str) -> str | None:
    """`NAME` from the environment, or the trimmed contents of the file `NAME_FILE` names.

    Raises SettingsError when that file cannot be read, is not a regular file, is larger
    than 64 KiB or is not UTF-8 text.
    """
    value = env.get(name)
    if value:
        return value
    path = env.get(f"{name}_FILE")
    if not path:
        return None
    try:
        raw = read_regular(path, MAX_SECRET_BYTES)
    except NotARegularFile:
        raise SettingsError(
            f"{name}_FILE names {path}, which is not a regular file; mount the secret there "
            "as a file"
        ) from None
    except OSError as exc:
        raise SettingsError(
            f"{name}_FILE names {path}, which cannot be read "
            f"({exc.strerror}); mount the secret there"
        ) from exc
    if len(raw) > MAX_SECRET_BYTES:
        raise SettingsError(
            f"{name}_FILE names {path}, which is larger than {MAX_SECRET_BYTES // 1024} KiB; "
            "name the file that holds only the secret"
        )
    try:
        return raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SettingsError(
            f"{name}_FILE names {path}, which is not UTF-8 text; write the secret as text"
        ) from None


def mask_url(url: str) -> str:
    """A database URL fit to print: the password of its user part and of every secret-named
    query option (`?password=`, `sslpassword`, …) replaced by ***; `<not a database URL>`
    for a text that does not parse. See `connectors.masking`."""
    return safe_url(url)


@dataclass(frozen=True)
class Settings:
    config_dir: Path = Path("config")
    state_url: str = DEFAULT_STATE_URL
    http_host: str = "0.0.0.0"  # noqa: S104  (a pod's probes and scrapes come from outside)
    http_port: int = 9464
    log_level: str = "INFO"
    log_format: str = "auto"
    stop_grace_seconds: float = 20.0
    # Seconds to keep retrying transient database errors (a failover); 0 turns retries off.
    retry_budget_seconds: float = 60.0
    lock_timeout_seconds: int = DEFAULT_LOCK_TIMEOUT_SECONDS
    statement_timeout_seconds: int = DEFAULT_STATEMENT_TIMEOUT_SECONDS
    pepper: bytes = field(default=b"", repr=False)
    # PEM Ed25519 private key signing audit checkpoints (worker/checkpoints.py); "" unsigned.
    checkpoint_key: str = field(default="", repr=False)
    # Seconds a pair's lease lasts without renewal (worker/leases.py): how long a crashed
    # holder's pairs wait before another process takes them over.
    lease_seconds: int = DEFAULT_LEASE_SECONDS
    # Seconds an idle run may borrow another run's read of the same product database: its
    # schema check (worker/drift.py SchemaCheck) and "nothing due" of a joint check
    # (worker/together.py); 0: never.
    schema_reuse_seconds: int = DEFAULT_SCHEMA_REUSE_SECONDS

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read and check every RETENTION_* setting; SettingsError names the one to fix."""
        state = read_secret(env, "RETENTION_STATE_URL") or DEFAULT_STATE_URL
        try:
            sa.make_url(state)
        except (sa.exc.ArgumentError, ValueError):
            raise SettingsError(
                f"RETENTION_STATE_URL is {mask_url(state)}, not a URL of the state database; "
                "set a database URL such as postgresql+psycopg://user@host/retention or "
                "sqlite:///state.db, with special characters of the password %-escaped"
            ) from None
        pepper = read_secret(env, "RETENTION_PEPPER") or ""
        lock, statement = product_timeouts(env)
        return cls(
            config_dir=Path(env.get("RETENTION_CONFIG_DIR") or "config"),
            state_url=state,
            http_host=_host(env),
            http_port=_int(env, "RETENTION_HTTP_PORT", 9464, 0, 65535),
            log_level=_choice(env, "RETENTION_LOG_LEVEL", "INFO", LEVELS, str.upper),
            log_format=_choice(env, "RETENTION_LOG_FORMAT", "auto", FORMATS, str.lower),
            stop_grace_seconds=float(_int(env, "RETENTION_STOP_GRACE_SECONDS", 20, 1, 3600)),
            retry_budget_seconds=float(_int(env, "RETENTION_RETRY_BUDGET_SECONDS", 60, 0, 3600)),
            lock_timeout_seconds=lock,
            statement_timeout_seconds=statement,
            pepper=pepper.encode("utf-8"),
            checkpoint_key=read_secret(env, "RETENTION_CHECKPOINT_KEY") or "",
            lease_seconds=_int(
                env, "RETENTION_LEASE_SECONDS", DEFAULT_LEASE_SECONDS, MIN_LEASE_SECONDS, 3600
            ),
            schema_reuse_seconds=_int(
                env, "RETENTION_SCHEMA_REUSE_SECONDS", DEFAULT_SCHEMA_REUSE_SECONDS, 0, 300
            ),
        )

    def retry_policy(self) -> RetryPolicy:
        """The retry policy for transient errors of product and state databases."""
        return RetryPolicy(budget_seconds=self.retry_budget_seconds)

    def state_timeouts(self) -> Timeouts:
        """The lock and statement timeouts of the state database's sessions (the same
        settings as the product databases' defaults; see worker/state/bounds.py)."""
        return Timeouts(
            lock_seconds=self.lock_timeout_seconds,
            statement_seconds=self.statement_timeout_seconds,
        )

    def state_store(self) -> StateStore:
        """The state database of RETENTION_STATE_URL, with the retry budget and the session
        timeouts above (not yet connected; see StateStore.check and migrate)."""
        return StateStore(self.state_url, retry=self.retry_policy(), timeouts=self.state_timeouts())

    def checkpoint_signer(self) -> Signer | None:
        """The signer of audit checkpoints, or None when no key is set (unsigned ones).

        SettingsError when the key is not an Ed25519 PEM private key, or is the pepper.
        """
        if not self.checkpoint_key:
            return None
        if self.pepper and self.checkpoint_key.encode("utf-8") == self.pepper:
            raise SettingsError(
                "RETENTION_CHECKPOINT_KEY must not be the pepper; make a key pair with "
                "`retention-worker audit keygen`"
            )
        try:
            return Signer.from_pem(self.checkpoint_key)
        except CheckpointError as exc:
            raise SettingsError(str(exc)) from None

    def require_pepper(self) -> bytes:
        if len(self.pepper) < MIN_PEPPER_BYTES:
            raise SettingsError(
                "set RETENTION_PEPPER (or RETENTION_PEPPER_FILE) to a secret of at least "
                f"{MIN_PEPPER_BYTES} characters: it keys the hashes of record ids in the audit "
                "trail and pseudonyms; keep it stable, or old hashes can no longer be matched"
            )
        return self.pepper


def product_timeouts(env: Mapping[str, str]) -> tuple[int, int]:
    """(lock, statement) timeouts of product sessions in seconds, from RETENTION_LOCK_TIMEOUT_
    SECONDS (1..3600, default 30) and RETENTION_STATEMENT_TIMEOUT_SECONDS (1..86400, default
    600); a product mapping's `timeouts:` overrides them. Raises SettingsError when invalid."""
    return (
        _int(env, "RETENTION_LOCK_TIMEOUT_SECONDS", DEFAULT_LOCK_TIMEOUT_SECONDS, 1, 3600),
        _int(
            env, "RETENTION_STATEMENT_TIMEOUT_SECONDS", DEFAULT_STATEMENT_TIMEOUT_SECONDS, 1, 86400
        ),
    )


def _shown(raw: str) -> str:
    return repr(raw) if len(raw) <= 40 else repr(raw[:35] + "…")


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """A whole number of plain digits from `low` to `high`; unset or empty is `default`."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if not _DIGITS.fullmatch(raw):
        raise SettingsError(f"{name} is {_shown(raw)}; set a whole number from {low} to {high}")
    value = int(raw)
    if not low <= value <= high:
        raise SettingsError(f"{name} is {value}; set a whole number from {low} to {high}")
    return value


def _choice(
    env: Mapping[str, str],
    name: str,
    default: str,
    allowed: tuple[str, ...],
    case: Callable[[str], str],
) -> str:
    """One of `allowed` (compared after `case`, e.g. str.upper); unset or empty is default."""
    raw = env.get(name) or default
    value = case(raw.strip())
    if value not in allowed:
        raise SettingsError(f"{name} is {_shown(raw)}; set one of {', '.join(allowed)}")
    return str(value)


def _host(env: Mapping[str, str]) -> str:
    raw = env.get("RETENTION_HTTP_HOST") or "0.0.0.0"  # noqa: S104  (probes come from outside)
    if not _HOST.fullmatch(raw):
        raise SettingsError(
            f"RETENTION_HTTP_HOST is {_shown(raw)}; set an address or host name to listen "
            "on, e.g. 0.0.0.0 (all), 127.0.0.1 or ::"
        )
    return raw


def load_env_file(path: Path, env: MutableMapping[str, str] | None = None) -> None:
    """Read KEY=VALUE lines into `env` (default os.environ); set variables win."""
    target = os.environ if env is None else env
    try:
        raw = read_regular(path, MAX_SECRET_BYTES)
    except OSError as exc:
        hint = "; `make demo` writes the demo's" if path.name == "demo.env" else ""
        raise SettingsError(f"cannot read the env file {path} ({exc.strerror}){hint}") from exc
    if len(raw) > MAX_SECRET_BYTES:
        raise SettingsError(f"the env file {path} is larger than 64 KiB; name the right file")
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise SettingsError(f"the env file {path} is not UTF-8 text; save it as UTF-8") from None
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        name, sep, value = text.partition("=")
        if not sep or not name.strip():
            raise SettingsError(f"{path}, line {number}: write NAME=VALUE")
        target.setdefault(name.strip(), value.strip())
