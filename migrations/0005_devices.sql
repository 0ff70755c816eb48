-- The device directory (SPEC §6 "Device directory", issue 16): Kazoo-shaped device documents.
--
-- `document` is `json` (kept as written, like metaflow documents). `owner_id` is copied out of the
-- document so `filter_owner_id` and `users/{U}/devices` are an index lookup. This file depends on
-- no other migration after 0001.
CREATE TABLE devices (
    account_id  text        NOT NULL,
    id          text        NOT NULL,
    owner_id    text,
    document    json        NOT NULL,
    seq         integer     NOT NULL,
    revision    text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, id)
);
CREATE INDEX devices_account_owner ON devices (account_id, owner_id);
