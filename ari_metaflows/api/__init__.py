"""The Kazoo-compatible REST API (aiohttp)."""
