-- What became of the digits of a code attempt (SPEC §5.6, issue 15): for a no-match,
-- 'replayed' (held back, then relayed to the other party), 'held' (another code still being
-- collected holds them) or 'passed' (the other party heard them at once: not held back);
-- for a match, 'dropped' (held back and never heard). Null on rows from before.
ALTER TABLE metaflow_events ADD COLUMN digits text;
