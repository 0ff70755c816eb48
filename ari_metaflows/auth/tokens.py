"""API tokens: the bootstrap admin token, per-account tokens stored hashed, Kazoo logins.

Account tokens are 256-bit random strings, so a plain SHA-256 is a safe digest to store (there
is nothing to brute-force); the database looks them up by digest. The admin token is compared
in constant time.

Kazoo login (crossbar's ``api_auth``): every account has an ``api_key`` (64 hex characters,
made on first need, rotatable); trading it for a session token gives a token that expires
after ``SESSION_IDLE_SECONDS`` without use. Use refreshes it, at most once a minute (a write
per request would cost the API its read throughput).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from ..db.database import Database
from ..errors import Forbidden, Unauthorized

TOKEN_PREFIX = "mft_"
SESSION_IDLE_SECONDS = 3600  # crossbar's default
SESSION_LABEL = "api_auth"
_REFRESH_AFTER_SECONDS = 60
_API_KEY_RE = re.compile(r"^[0-9a-f]{64}$")


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the admin (every account) or one account's token."""

    account_id: str | None

    @property
    def is_admin(self) -> bool:
        return self.account_id is None

    def require_account(self, account_id: str) -> None:
        if self.account_id is not None and self.account_id != account_id:
            raise Forbidden("this token is not valid for that account")


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: str
    account_id: str
    label: str
    created_at: datetime
    revoked_at: datetime | None


class TokenStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, account_id: str, label: str = "") -> tuple[TokenInfo, str]:
        """Return the token's record and the token itself (shown once, never stored)."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token_id = secrets.token_hex(6)
        async with self.db.connection() as conn:
            row = await conn.fetchrow(
                "INSERT INTO api_tokens (id, account_id, token_sha256, label) "
                "VALUES ($1, $2, $3, $4) RETURNING id, account_id, label, created_at, revoked_at",
                token_id,
                account_id,
                digest(token),
                label,
            )
        assert row is not None
        return TokenInfo(**dict(row)), token

    async def account_of(self, token: str) -> str | None:
        """The account of a live token; a session token idle too long is dead, a used one is
        refreshed (at most once a minute)."""
        async with self.db.connection() as conn:
            row = await conn.fetchrow(
                "SELECT account_id, idle_seconds IS NOT NULL "
                f"  AND last_used_at < now() - interval '{_REFRESH_AFTER_SECONDS} seconds' "
                "  AS stale FROM api_tokens "
                "WHERE token_sha256 = $1 AND revoked_at IS NULL AND (idle_seconds IS NULL "
                "  OR last_used_at > now() - make_interval(secs => idle_seconds))",
                digest(token),
            )
            if row is None:
                return None
            if row["stale"]:
                await conn.execute(
                    "UPDATE api_tokens SET last_used_at = now() WHERE token_sha256 = $1",
                    digest(token),
                )
        account: str = row["account_id"]
        return account

    async def create_session(self, account_id: str) -> str:
        """A token for ``api_auth``: expires after an idle ``SESSION_IDLE_SECONDS``."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        async with self.db.connection() as conn:
            await conn.execute(
                "INSERT INTO api_tokens (id, account_id, token_sha256, label, idle_seconds) "
                "VALUES ($1, $2, $3, $4, $5)",
                secrets.token_hex(6),
                account_id,
                digest(token),
                SESSION_LABEL,
                SESSION_IDLE_SECONDS,
            )
        return token

    async def api_key(self, account_id: str) -> str:
        """The account's api_key, made on first need."""
        select = "SELECT api_key FROM account_api_keys WHERE account_id = $1"
        async with self.db.connection() as conn:
            existing: str | None = await conn.fetchval(select, account_id)
            if existing is None:
                key = secrets.token_hex(32)
                await conn.execute(
                    "INSERT INTO account_api_keys (account_id, api_key, api_key_sha256) "
                    "VALUES ($1, $2, $3) ON CONFLICT (account_id) DO NOTHING",
                    account_id,
                    key,
                    digest(key),
                )
                existing = await conn.fetchval(select, account_id)
        assert existing is not None
        return existing

    async def rotate_api_key(self, account_id: str) -> str:
        """A new api_key; the old one stops working, and so do sessions made with it."""
        key = secrets.token_hex(32)
        async with self.db.connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO account_api_keys (account_id, api_key, api_key_sha256) "
                "VALUES ($1, $2, $3) ON CONFLICT (account_id) DO UPDATE SET "
                "api_key = EXCLUDED.api_key, api_key_sha256 = EXCLUDED.api_key_sha256, "
                "created_at = now()",
                account_id,
                key,
                digest(key),
            )
            await conn.execute(
                "UPDATE api_tokens SET revoked_at = now() WHERE account_id = $1 "
                "AND idle_seconds IS NOT NULL AND revoked_at IS NULL",
                account_id,
            )
        return key

    async def account_of_api_key(self, api_key: str) -> str | None:
        if not _API_KEY_RE.match(api_key):
            return None
        async with self.db.connection() as conn:
            account: str | None = await conn.fetchval(
                "SELECT account_id FROM account_api_keys WHERE api_key_sha256 = $1",
                digest(api_key),
            )
        return account

    async def list(self, account_id: str | None = None) -> list[TokenInfo]:
        async with self.db.connection() as conn:
            rows = await conn.fetch(
                "SELECT id, account_id, label, created_at, revoked_at FROM api_tokens "
                "WHERE $1::text IS NULL OR account_id = $1 ORDER BY created_at, id",
                account_id,
            )
        return [TokenInfo(**dict(row)) for row in rows]

    async def revoke(self, token_id: str) -> bool:
        async with self.db.connection() as conn:
            status: str = await conn.execute(
                "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
                token_id,
            )
        return status.endswith(" 1")


class Authenticator:
    def __init__(self, admin_token: str | None, tokens: TokenStore) -> None:
        self._admin_digest = digest(admin_token) if admin_token else None
        self._tokens = tokens

    async def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise Unauthorized(
                "no token: send X-Auth-Token, Authorization: Bearer, or ?auth_token="
            )
        if len(token) > 512:
            raise Unauthorized("the token is not valid")
        if self._admin_digest is not None and hmac.compare_digest(
            digest(token), self._admin_digest
        ):
            return Principal(None)
        if not token.startswith(TOKEN_PREFIX):
            raise Unauthorized("the token is not valid")
        account = await self._tokens.account_of(token)
        if account is None:
            raise Unauthorized("the token is not valid")
        return Principal(account)

    async def login(self, api_key: str) -> tuple[str, str]:
        """Trade an account's api_key for a session token: ``(token, account_id)``."""
        account = await self._tokens.account_of_api_key(api_key)
        if account is None:
            raise Unauthorized("invalid credentials")
        return await self._tokens.create_session(account), account

    @property
    def tokens(self) -> TokenStore:
        return self._tokens
