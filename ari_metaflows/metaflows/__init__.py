"""Metaflow documents: validation, storage and resolution by owner precedence."""
