-- The audit trail: one row per metaflow execution (SPEC §8, issue 8).
--
-- Rows are written in batches by the service's write-behind buffer, never on the DTMF path.
-- `id` is chosen by the service, so a batch retried after a lost acknowledgement is idempotent.
CREATE TABLE metaflow_events (
    id              text             PRIMARY KEY,
    account_id      text             NOT NULL,
    occurred_at     timestamptz      NOT NULL,  -- when the code matched (or the API asked)
    call_id         text             NOT NULL,
    leg             text             NOT NULL,  -- the role that pressed (caller or callee)
    channel_id      text,
    owner           text,                       -- the role whose metaflows matched
    user_id         text,                       -- that owner leg's user, when known
    device_id       text,                       -- that owner leg's device, when known
    trigger         text             NOT NULL CHECK (trigger IN ('dtmf', 'api')),
    collected       text,
    matched_key     text,
    match_kind      text,                       -- number, pattern or null (no match, API)
    module          text,
    outcome         text             NOT NULL,  -- ok, failed, unavailable, no_match, too_long…
    steps           jsonb            NOT NULL DEFAULT '[]',
    dispatch_ms     double precision,           -- match → first ARI request
    duration_ms     double precision            -- match → end of the flow
);
CREATE INDEX metaflow_events_account_time ON metaflow_events (account_id, occurred_at DESC, id DESC);
CREATE INDEX metaflow_events_account_call ON metaflow_events (account_id, call_id);
CREATE INDEX metaflow_events_account_user ON metaflow_events (account_id, user_id);
CREATE INDEX metaflow_events_account_device ON metaflow_events (account_id, device_id);
