"""Process settings from the environment (RETENTION_*); secrets also from *_FILE.

Nothing here reads the environment at import time: `Settings.from_env(os.environ)`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

from connectors.masking import safe_url
from worker.checkpoints import CheckpointError, Signer
from worker.errors import SettingsError
from worker.retry import RetryPolicy

DEFAULT_STATE_URL = "sqlite:///.retention/state.db"
MIN_PEPPER_BYTES = 16
# Product sessions: the longest wait for a lock, and the longest statement (seconds).
DEFAULT_LOCK_TIMEOUT_SECONDS = 30
DEFAULT_STATEMENT_TIMEOUT_SECONDS = 600


def read_secret(env: Mapping[str, str], name: str) -> str | None:
    """`NAME` from the environment, or the contents of the file `NAME_FILE` names."""
    value = env.get(name)
    if value:
        return value
    path = env.get(f"{name}_FILE")
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SettingsError(
            f"{name}_FILE names {path}, which cannot be read "
            f"({exc.strerror}); mount the secret there"
        ) from exc


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

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        state = read_secret(env, "RETENTION_STATE_URL") or DEFAULT_STATE_URL
        pepper = read_secret(env, "RETENTION_PEPPER") or ""
        lock, statement = product_timeouts(env)
        fmt = env.get("RETENTION_LOG_FORMAT", "auto").lower()
        if fmt not in ("json", "console", "auto"):
            raise SettingsError(f"RETENTION_LOG_FORMAT is {fmt!r}; use json, console or auto")
        return cls(
            config_dir=Path(env.get("RETENTION_CONFIG_DIR", "config")),
            state_url=state,
            http_host=env.get("RETENTION_HTTP_HOST", "0.0.0.0"),  # noqa: S104
            http_port=_int(env, "RETENTION_HTTP_PORT", 9464, 0, 65535),
            log_level=env.get("RETENTION_LOG_LEVEL", "INFO").upper(),
            log_format=fmt,
            stop_grace_seconds=float(_int(env, "RETENTION_STOP_GRACE_SECONDS", 20, 1, 3600)),
            retry_budget_seconds=float(_int(env, "RETENTION_RETRY_BUDGET_SECONDS", 60, 0, 3600)),
            lock_timeout_seconds=lock,
            statement_timeout_seconds=statement,
            pepper=pepper.encode("utf-8"),
            checkpoint_key=read_secret(env, "RETENTION_CHECKPOINT_KEY") or "",
        )

    def retry_policy(self) -> RetryPolicy:
        """The retry policy for transient errors of product and state databases."""
        return RetryPolicy(budget_seconds=self.retry_budget_seconds)

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


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} is {raw!r}; set a whole number") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} is {value}; set a number from {low} to {high}")
    return value


def load_env_file(path: Path, env: MutableMapping[str, str] | None = None) -> None:
    """Read KEY=VALUE lines into `env` (default os.environ); set variables win."""
    target = os.environ if env is None else env
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        hint = "; `make demo` writes the demo's" if path.name == "demo.env" else ""
        raise SettingsError(f"cannot read the env file {path} ({exc.strerror}){hint}") from exc
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        name, sep, value = text.partition("=")
        if not sep or not name.strip():
            raise SettingsError(f"{path}, line {number}: write NAME=VALUE")
        target.setdefault(name.strip(), value.strip())
