-- One row per call recording (SPEC §6 record_call, §7 recordings API).
--
-- Rows are written by the service's write-behind journal: every write carries the whole row and
-- a `version` that only grows, so replaying the journal after an outage or a restart is
-- idempotent and never turns a finished row back into a live one.
CREATE TABLE recordings (
    id             text        PRIMARY KEY,
    account_id     text        NOT NULL,
    owner_type     text        NOT NULL CHECK (owner_type IN ('account', 'user', 'device')),
    owner_id       text        NOT NULL,
    call_id        text        NOT NULL,
    legs           text[]      NOT NULL,
    name           text        NOT NULL UNIQUE,  -- Asterisk's recording name
    format         text        NOT NULL,
    label          text,
    state          text        NOT NULL CHECK (state IN ('recording', 'finished', 'failed')),
    started_at     timestamptz NOT NULL,
    ended_at       timestamptz,
    duration       double precision,             -- seconds, once ended
    failure_cause  text,
    version        integer     NOT NULL
);
CREATE INDEX recordings_account_started ON recordings (account_id, started_at DESC, id DESC);
CREATE INDEX recordings_account_call ON recordings (account_id, call_id);
