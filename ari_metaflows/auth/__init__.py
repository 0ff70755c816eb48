"""API authentication: the admin token and per-account tokens."""
