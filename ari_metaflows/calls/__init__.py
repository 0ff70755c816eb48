"""Calls: legs, bridges, per-leg DTMF collectors and the call engine."""
