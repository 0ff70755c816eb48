-- Kazoo login (issue 17): one api_key per account, and api_auth session tokens.

-- The key must be readable again (GET /v2/accounts/{A}/api_key), so it is kept as written;
-- logins look it up by its SHA-256.
CREATE TABLE account_api_keys (
    account_id      text        PRIMARY KEY,
    api_key         text        NOT NULL,
    api_key_sha256  bytea       NOT NULL UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Tokens from PUT /v2/api_auth expire after idle_seconds without use; CLI tokens (NULL) do not.
ALTER TABLE api_tokens
    ADD COLUMN idle_seconds  integer,
    ADD COLUMN last_used_at  timestamptz NOT NULL DEFAULT now();
