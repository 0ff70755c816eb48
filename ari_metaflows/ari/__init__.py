"""The Asterisk edge: a typed gateway over aioari and the connection supervisor."""
