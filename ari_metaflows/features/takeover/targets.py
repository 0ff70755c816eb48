"""Which devices an intercept or a move rings, read from the device directory.

Every refusal is a ``TargetRefused`` with the reason (the flow's audit outcome is "failed"; the
channels API answers 404 for ``not_found``, else 400, before any phone rings).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...calls.feature import EXTENSION_RE
from ...devices import Device, DeviceDirectory, DeviceUnreachable
from ...errors import DatastoreUnavailable, TargetRefused
from ...metaflows.resolver import LegIdentity


@dataclass(frozen=True, slots=True)
class Target:
    """One phone to ring: the device (None for a plain number) and its dial string."""

    device_id: str | None
    dial_string: str

    @property
    def label(self) -> str:
        return self.device_id or self.dial_string


def _dialable(device: Device, transfer_context: str) -> Target:
    if not device.enabled:
        raise TargetRefused(f"device {device.id} is disabled")
    try:
        return Target(device.id, device.dial_string(transfer_context))
    except DeviceUnreachable as exc:
        raise TargetRefused(str(exc)) from exc


async def _device(directory: DeviceDirectory, account: str, device_id: str) -> Device:
    try:
        device = await directory.get(account, device_id)
    except DatastoreUnavailable as exc:
        raise TargetRefused(f"the device directory is unavailable: {exc}") from exc
    if device is None:
        raise TargetRefused(f"no device {device_id} in account {account}", not_found=True)
    return device


async def _devices_of(directory: DeviceDirectory, account: str, user: str) -> list[Device]:
    try:
        devices = await directory.of_owner(account, user)
    except DatastoreUnavailable as exc:
        raise TargetRefused(f"the device directory is unavailable: {exc}") from exc
    if not devices:
        raise TargetRefused(f"user {user} has no devices in account {account}", not_found=True)
    return devices


def _others(devices: list[Device], own: str | None, user: str, context: str) -> list[Target]:
    """The user's enabled, reachable devices but ``own`` (the presser's)."""
    targets = []
    for device in devices:
        if device.id == own or not device.enabled or not device.reachable:
            continue
        targets.append(Target(device.id, device.dial_string(context)))
    if not targets:
        raise TargetRefused(f"user {user} has no other enabled device to ring")
    return targets


def _own_device(device_id: str, own: str | None, can_call_self: bool) -> None:
    if device_id == own and not can_call_self:
        raise TargetRefused(f"device {device_id} is the presser's own (can_call_self is false)")


async def intercept_targets(
    directory: DeviceDirectory,
    data: Mapping[str, Any],
    account: str,
    presser: LegIdentity | None,
    transfer_context: str,
) -> list[Target]:
    target_type = data.get("target_type")
    target_id = data.get("target_id")
    if not isinstance(target_id, str) or not target_id:
        raise TargetRefused("intercept needs data.target_id")
    own = presser.device_id if presser else None
    if target_type == "device":
        _own_device(target_id, own, data.get("can_call_self", True) is not False)
        return [_dialable(await _device(directory, account, target_id), transfer_context)]
    if target_type == "user":
        devices = await _devices_of(directory, account, target_id)
        return _others(devices, own, target_id, transfer_context)
    if target_type == "number":
        if not EXTENSION_RE.match(target_id):
            raise TargetRefused(f"{target_id!r} is not a dialable number")
        return [Target(None, f"Local/{target_id}@{transfer_context}")]
    raise TargetRefused("intercept needs data.target_type (device, user or number)")


async def move_targets(
    directory: DeviceDirectory,
    data: Mapping[str, Any],
    account: str,
    presser: LegIdentity | None,
    transfer_context: str,
) -> list[Target]:
    own = presser.device_id if presser else None
    device_id = data.get("device_id")
    owner = data.get("owner_id") or (presser.user_id if presser else None)
    if isinstance(device_id, str) and device_id:
        _own_device(device_id, own, data.get("can_call_self", True) is not False)
        device = await _device(directory, account, device_id)
        if isinstance(owner, str) and data.get("owner_id") and device.owner_id != owner:
            raise TargetRefused(f"device {device_id} is not owned by {owner}", not_found=True)
        return [_dialable(device, transfer_context)]
    if not isinstance(owner, str) or not owner:
        raise TargetRefused("move needs data.owner_id or a presser with a user id")
    devices = await _devices_of(directory, account, owner)
    return _others(devices, own, owner, transfer_context)
