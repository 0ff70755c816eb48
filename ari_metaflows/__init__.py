"""In-call feature codes (Kazoo-style metaflows) for Asterisk over ARI."""

__version__ = "0.1.0"
