"""The call core: legs, bridges, phase, mailbox, timers, DTMF collectors and the engine.

Features plug in through ``feature.Feature`` and live in ``ari_metaflows/features``; nothing
here imports them (docs/architecture.md)."""
