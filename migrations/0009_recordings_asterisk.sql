-- The Asterisk server whose call made each recording (issue 18, SPEC §8a): its stored audio lives
-- there, so any instance fetches or deletes it from that server. Rows written before this
-- migration keep NULL: their audio is asked of the answering instance's first Asterisk.
ALTER TABLE recordings ADD COLUMN asterisk text;
