-- Metaflow documents per owner, and account API tokens.

-- `document` is `json`, not `jsonb`: json keeps the text as written, so the order of
-- `patterns` (first match wins) survives storage. NULL marks a deleted document (a tombstone
-- that keeps the revision counter going).
CREATE TABLE metaflow_documents (
    account_id  text        NOT NULL,
    owner_type  text        NOT NULL CHECK (owner_type IN ('account', 'user', 'device')),
    owner_id    text        NOT NULL,
    document    json,
    seq         integer     NOT NULL,
    revision    text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, owner_type, owner_id)
);

-- Tokens are random; only their SHA-256 is stored.
CREATE TABLE api_tokens (
    id            text        PRIMARY KEY,
    account_id    text        NOT NULL,
    token_sha256  bytea       NOT NULL UNIQUE,
    label         text        NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);
CREATE INDEX api_tokens_account ON api_tokens (account_id);
