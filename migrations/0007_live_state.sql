-- Several instances, several Asterisk servers, one PostgreSQL (SPEC §8a, issue 18).
-- Depends on no other migration after 0001.

-- Who holds each Asterisk's ARI connection. A holder renews its row every second; a row whose
-- expires_at has passed may be taken by anyone (see docs/decisions.md, "Leases").
CREATE TABLE asterisk_leases (
    asterisk    text        PRIMARY KEY,
    holder      text        NOT NULL,
    expires_at  timestamptz NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Live legs as the channels listing shows them, written behind by the instance that holds the
-- leg's Asterisk. `view` is the listing's JSON object for the leg. Channel ids are unique per
-- Asterisk only (set `systemname` on each server to make them unique across the cluster).
CREATE TABLE live_legs (
    channel_id  text        NOT NULL,
    call_id     text        NOT NULL,
    account_id  text,
    owner_id    text,
    state       text        NOT NULL,
    asterisk    text        NOT NULL,
    instance    text        NOT NULL,
    view        jsonb       NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (asterisk, channel_id)
);
CREATE INDEX live_legs_account ON live_legs (account_id, channel_id);

-- Parking slots, unique per account across the cluster: claim = insert, release = delete.
CREATE TABLE parking_slots (
    account_id  text        NOT NULL,
    slot        text        NOT NULL,
    asterisk    text        NOT NULL,
    instance    text        NOT NULL,
    channel_id  text        NOT NULL,
    parked_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (account_id, slot)
);
