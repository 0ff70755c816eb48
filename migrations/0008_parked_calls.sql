-- Parked calls as every instance lists them, and what the next holder of an Asterisk needs to
-- adopt one (issue 18): the parked party's channel name and call, the parker's dial string (the
-- timeout rings it back), the timeout and the bridge the party waits in. Rows claimed before
-- this migration keep NULLs: they are listed without these fields and not adopted.
ALTER TABLE parking_slots
    ADD COLUMN call_id      text,
    ADD COLUMN channel_name text,
    ADD COLUMN parker       text,
    ADD COLUMN timeout      double precision,
    ADD COLUMN bridge_id    text;
CREATE INDEX parking_slots_asterisk ON parking_slots (asterisk, instance);
