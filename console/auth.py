"""Console sign-in: users and roles declared in `conf/console.yaml`, scrypt password hashes, token sessions.

Roles follow the Trust issue (`conf/roles.yaml`): `marketer` (gold tables, masked identifiers only, no bronze /
`pii_values`, no look-up by mobile), `data_engineer` (also silver, identity and ingestion tables), `admin`.
Who may look a customer up by mobile or export is read from `conf/roles.yaml` (`may_lookup_mobile`,
`may_export`); the mobile is hashed with the lake's HMAC key, never stored or logged. A password hash has the form

    scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>          (hashlib.scrypt, RFC 7914)

and is made with `cdp console-hash-password` (or `hash_password()`):

    >>> stored = hash_password("s3cret", salt=b"0123456789abcdef")
    >>> verify_password("s3cret", stored), verify_password("wrong", stored)
    (True, False)

Sessions are random bearer tokens held in the server's memory with an idle timeout; restarting the server
signs everyone out. Behind a cluster gateway the same tokens travel in the `Authorization: Bearer` header.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cdp.config import read_yaml
from cdp.errors import ConfigError

log = logging.getLogger(__name__)

Role = Literal["marketer", "data_engineer", "admin"]
ROLES: tuple[str, ...] = ("marketer", "data_engineer", "admin")

# What each role may do. Data, not scattered `if role == ...` checks: handlers ask `require(permission)`.
PERMISSIONS: dict[str, frozenset[str]] = {
    "marketer": frozenset({"profiles:read", "segments:read", "segments:write", "segments:export", "overview:read"}),
    "data_engineer": frozenset({"profiles:read", "profiles:lookup_mobile", "segments:read", "segments:write",
                                "segments:export", "overview:read", "quality:detail"}),
    "admin": frozenset({"profiles:read", "profiles:lookup_mobile", "segments:read", "segments:write",
                        "segments:export", "overview:read", "quality:detail", "pii:export"}),
}

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


def hash_password(password: str, salt: bytes | None = None) -> str:
    """The stored form of `password`: `scrypt$n$r$p$salt$hash` (hex)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of `password` against a stored `scrypt$...` hash (False for a malformed hash)."""
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(password.encode("utf-8"), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                                dklen=len(bytes.fromhex(expected)), maxmem=2**27)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest.hex(), expected)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ConsoleUser(_Frozen):
    role: Role
    password_hash: str
    display_name: str = ""

    @field_validator("password_hash")
    @classmethod
    def _scrypt(cls, value: str) -> str:
        if not value.startswith("scrypt$") or value.count("$") != 5:
            raise ValueError("must be a scrypt hash `scrypt$n$r$p$salt$hash`; make one with "
                             "`cdp console-hash-password`")
        return value


class ConsoleConfig(_Frozen):
    demo: bool = False  # demo users with published passwords: refused outside the local profile
    session_idle_minutes: int = Field(480, ge=1, le=7 * 24 * 60)
    users: dict[str, ConsoleUser]


def load_users(path: str | Path) -> ConsoleConfig:
    """Read and validate `conf/console.yaml`; errors name the file, the key and the fix."""
    raw = read_yaml(Path(path))
    try:
        return ConsoleConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: {problems} (roles: {list(ROLES)})") from None


def role_permissions(roles_file: str | Path | None = None) -> dict[str, frozenset[str]]:
    """PERMISSIONS, with `may_lookup_mobile` / `may_export` taken from the Trust roles file when it exists.

    `conf/roles.yaml` (cdp access control) is the one place that says which role may look a customer up by
    mobile or export; the console follows it so the CLI and the console never disagree.
    """
    perms = {role: set(p) for role, p in PERMISSIONS.items()}
    if roles_file is not None and Path(roles_file).exists():
        declared = (read_yaml(Path(roles_file)) or {}).get("roles", {}) or {}
        for role, spec in declared.items():
            if role not in perms or not isinstance(spec, dict):
                continue
            for flag, permission in (("may_lookup_mobile", "profiles:lookup_mobile"),
                                     ("may_export", "segments:export")):
                if flag in spec:
                    (perms[role].add if spec[flag] else perms[role].discard)(permission)
    return {role: frozenset(p) for role, p in perms.items()}


@dataclass
class Session:
    token: str
    username: str
    role: str
    last_seen: float
    permissions: frozenset[str] = frozenset()


@dataclass
class SessionStore:
    """Bearer tokens -> sessions, in memory, with an idle timeout. Thread-safe (uvicorn runs handlers in threads)."""

    config: ConsoleConfig
    permissions: dict[str, frozenset[str]] = field(default_factory=lambda: dict(PERMISSIONS))
    clock: callable = time.monotonic  # type: ignore[valid-type]
    _sessions: dict[str, Session] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def sign_in(self, username: str, password: str) -> Session | None:
        user = self.config.users.get(username)
        # verify against a dummy hash for unknown users so timing does not reveal which names exist
        stored = user.password_hash if user else _DUMMY_HASH
        ok = verify_password(password, stored) and user is not None
        if not ok:
            log.info("console sign-in refused")
            return None
        session = Session(secrets.token_urlsafe(32), username, user.role, self.clock(),
                          self.permissions[user.role])
        with self._lock:
            self._sessions[session.token] = session
        log.info("console sign-in role=%s", user.role)
        return session

    def get(self, token: str) -> Session | None:
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                return None
            if self.clock() - session.last_seen > self.config.session_idle_minutes * 60:
                del self._sessions[token]
                return None
            session.last_seen = self.clock()
            return session

    def sign_out(self, token: str) -> None:
        with self._lock:
            self._sessions.pop(token, None)


_DUMMY_HASH = hash_password("not-a-user", salt=b"\0" * 16)
