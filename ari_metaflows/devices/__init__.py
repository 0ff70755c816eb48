"""The device directory: Kazoo-shaped devices an account's users own (SPEC §6)."""

from .model import Device, DeviceUnreachable, validate_device
from .store import DeviceDirectory, DeviceStore, StoredDevice

__all__ = [
    "Device",
    "DeviceDirectory",
    "DeviceStore",
    "DeviceUnreachable",
    "StoredDevice",
    "validate_device",
]
