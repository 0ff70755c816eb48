"""pivot: the next node of a flow comes from an HTTP server (Kazoo's ``voice_url``)."""
