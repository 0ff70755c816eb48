"""API tokens: the bootstrap admin token and per-account tokens stored hashed.

Account tokens are 256-bit random strings, so a plain SHA-256 is a safe digest to store (there
is nothing to brute-force); the database looks them up by digest. The admin token is compared
in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from ..db.database import Database
from ..errors import Forbidden, Unauthorized

TOKEN_PREFIX = "mft_"


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
        async with self.db.connection() as conn:
            account: str | None = await conn.fetchval(
                "SELECT account_id FROM api_tokens WHERE token_sha256 = $1 AND revoked_at IS NULL",
                digest(token),
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
            raise Unauthorized("the X-Auth-Token header is missing")
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
