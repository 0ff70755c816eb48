"""The OpenAPI 3.1 description of the API, built from the same schemas the validator uses."""

from __future__ import annotations

from functools import cache
from typing import Any

from .. import __version__
from ..devices.model import DEVICE_SCHEMA
from ..metaflows.documents import (
    MAX_CHILD_DEPTH,
    MAX_PATTERN_LENGTH,
    MAX_PATTERNS,
    NUMBER_KEY_PATTERN,
    TOP_LEVEL_SCHEMA,
    module_specs,
)
from ..metaflows.fragments import CALLFLOW_ACTION_REF
from ..metaflows.schema import REFS

_REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _envelope(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["auth_token", "data", "node", "request_id", "status", "timestamp", "version"],
        "properties": {
            "auth_token": {"type": "string"},
            "data": data,
            "node": {"type": "string"},
            "request_id": {"type": "string"},
            "revision": {"type": "string"},
            "status": {"type": "string", "enum": ["success"]},
            "timestamp": {"type": "string", "format": "date-time"},
            "version": {"type": "string"},
        },
    }


def _error_envelope() -> dict[str, Any]:
    schema = _envelope({"type": "object"})
    schema["required"] = [*schema["required"], "error", "message"]
    schema["properties"] = {
        **schema["properties"],
        "status": {"type": "string", "enum": ["error"]},
        "error": {"type": "string", "description": "the HTTP status code"},
        "message": {
            "type": "string",
            "description": (
                "the error id, as crossbar: invalid_credentials, forbidden, not_found, "
                "invalid_method, datastore_conflict, request_entity_too_large, "
                "datastore_unreachable, asterisk_unreachable, not_ready, internal_error; "
                "400s keep 'invalid request', 'validation error', 'invalid identifier'. "
                "data.message holds the human text"
            ),
        },
    }
    del schema["properties"]["revision"]
    return schema


def _node_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["module"],
        "description": f"A metaflow node; children nest at most {MAX_CHILD_DEPTH} levels.",
        "properties": {
            "module": {"type": "string", "enum": sorted(module_specs())},
            "data": {"type": "object", "description": "validated by the module's data schema"},
            "children": {"type": "object", "additionalProperties": _ref("MetaflowNode")},
        },
    }


def _document_schema() -> dict[str, Any]:
    properties = dict(TOP_LEVEL_SCHEMA["properties"])
    properties["numbers"] = {
        "type": "object",
        "propertyNames": {"pattern": NUMBER_KEY_PATTERN},
        "additionalProperties": _ref("MetaflowNode"),
    }
    properties["patterns"] = {
        "type": "object",
        "description": (
            "regular expression → node; order is significant (first match wins). Refused: "
            "repeat bounds over 32, nested repeats multiplying past 32, patterns needing more "
            "than 32 digits, literal braces (see docs/decisions.md, issue 17)"
        ),
        "maxProperties": MAX_PATTERNS,
        "propertyNames": {"minLength": 1, "maxLength": MAX_PATTERN_LENGTH},
        "additionalProperties": _ref("MetaflowNode"),
    }
    return {"type": "object", "properties": properties}


_ERRORS = {
    "400": "invalid body, identifier or document (validation error)",
    "401": "missing or invalid token (X-Auth-Token, Authorization: Bearer or ?auth_token=)",
    "403": "the token belongs to another account",
    "404": "unknown path",
    "405": "method not allowed (see Allow)",
    "409": (
        "If-Match does not match the current revision, the recording is still live, or the "
        "call cannot be intercepted or moved now"
    ),
    "413": "body larger than 256 KiB",
    "503": "database or Asterisk unavailable",
}


def _responses(ok: dict[str, Any]) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": ok}
    for code, text in _ERRORS.items():
        responses[code] = {
            "description": text,
            "content": {"application/json": {"schema": _ref("ErrorEnvelope")}},
        }
    return responses


def _metaflow_operations(parameters: list[dict[str, Any]]) -> dict[str, Any]:
    ok = {
        "description": "the owner's document (`{}` when none)",
        "content": {"application/json": {"schema": _ref("DocumentEnvelope")}},
    }
    if_match = {
        "name": "If-Match",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "write only if this is the current revision",
    }
    return {
        "parameters": parameters,
        "get": {"summary": "Read the owner's metaflows (not merged)", "responses": _responses(ok)},
        "post": {
            "summary": "Replace the owner's metaflows with the validated document",
            "parameters": [if_match],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["data"],
                            "properties": {"data": _ref("MetaflowDocument")},
                        }
                    }
                },
            },
            "responses": _responses(ok),
        },
        "delete": {
            "summary": "Remove the owner's metaflows",
            "parameters": [if_match],
            "responses": _responses(ok),
        },
    }


def _path_param(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": r"^[A-Za-z0-9_@+.-]{1,128}$"},
    }


def _live_operations(plain_ok: dict[str, Any]) -> dict[str, dict[str, Any]]:
    account = _path_param("account_id")
    channel = _path_param("channel_id")
    recording = _path_param("recording_id")
    accepted = {**plain_ok, "description": "accepted: the module runs on the call"}
    page_params = [
        {"name": "page_size", "in": "query", "schema": {"type": "integer", "minimum": 1}},
        {"name": "start_key", "in": "query", "schema": {"type": "string"}},
        {"name": "owner_id", "in": "query", "schema": {"type": "string"}},
        {"name": "call_id", "in": "query", "schema": {"type": "string"}},
    ]
    body = {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object", "required": ["data"]}}},
    }
    audio = {"description": "the recording's audio", "content": {"audio/*": {}}}
    return {
        "/v2/accounts/{account_id}/channels": {
            "parameters": [account],
            "get": {"summary": "Live legs of the account", "responses": _responses(plain_ok)},
        },
        "/v2/accounts/{account_id}/channels/{channel_id}": {
            "parameters": [account, channel],
            "get": {"summary": "One live leg", "responses": _responses(plain_ok)},
            "post": {
                "summary": 'Run one module: {"data": {"action": "<module>", ...}}',
                "description": (
                    "The module runs on leg {channel_id} as if its owner had pressed a code. "
                    "`intercept` (target_type device|user|number, target_id): {channel_id} is "
                    "the leg intercepted, a ringing callee with unbridged_only (directed "
                    "pickup); `move` (owner_id, device_id): {channel_id}'s other party moves "
                    "to the device that answers. Their targets are checked before the 202: "
                    "404 unknown device or user (or one of another account), 400 disabled, "
                    "unreachable or no other device, 409 the call is not in a state to "
                    "intercept or move (e.g. answered, with unbridged_only)."
                ),
                "requestBody": body,
                "responses": {**_responses(plain_ok), "202": accepted},
            },
            "put": {
                "summary": 'Run a metaflow node: {"action": "metaflow", "data": {...}}',
                "requestBody": body,
                "responses": {**_responses(plain_ok), "202": accepted},
            },
        },
        "/v2/accounts/{account_id}/recordings": {
            "parameters": [account],
            "get": {
                "summary": "Recordings, newest first (Kazoo paging: next_start_key)",
                "parameters": page_params,
                "responses": _responses(plain_ok),
            },
        },
        "/v2/accounts/{account_id}/recordings/{recording_id}": {
            "parameters": [account, recording],
            "get": {
                "summary": "One recording",
                "description": (
                    "`asterisk` names the server whose call made it (null: rows older than "
                    "migration 0009, kept on the first configured server)."
                ),
                "responses": _responses(plain_ok),
            },
            "delete": {
                "summary": "Delete the recording's row and its stored audio",
                "description": (
                    "The file is deleted on the recording's `asterisk`, by any instance; "
                    "503 when that server is unreachable or no longer configured (the row stays)."
                ),
                "responses": _responses(plain_ok),
            },
        },
        "/v2/accounts/{account_id}/parked_calls": {
            "parameters": [account],
            "get": {
                "summary": "The account's parking lot (in a cluster: of every server)",
                "responses": _responses(plain_ok),
            },
        },
        "/v2/accounts/{account_id}/parked_calls/{slot}": {
            "parameters": [
                account,
                {
                    "name": "slot",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[0-9]{1,8}$"},
                },
            ],
            "get": {
                "summary": "The call parked in the slot (in a cluster: on any server)",
                "responses": _responses(plain_ok),
            },
            "post": {
                "summary": 'Send the parked party on: {"data": {"extension", "context"?}}',
                "requestBody": body,
                "responses": {**_responses(plain_ok), "202": accepted},
            },
        },
        "/v2/accounts/{account_id}/metaflow_events": {
            "parameters": [account],
            "get": {
                "summary": "The audit trail, newest first (Kazoo paging: next_start_key)",
                "parameters": [
                    *[p for p in page_params if p["name"] != "owner_id"],
                    {
                        "name": "owner_id",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "the owner leg's user or device",
                    },
                    {
                        "name": "created_from",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "Unix seconds or ISO 8601, inclusive",
                    },
                    {
                        "name": "created_to",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "Unix seconds or ISO 8601, exclusive",
                    },
                ],
                "responses": _responses(plain_ok),
            },
        },
        "/v2/accounts/{account_id}/recordings/{recording_id}/file": {
            "parameters": [account, recording],
            "get": {
                "summary": "The audio, streamed",
                "description": (
                    "From the recording's `asterisk`, by any instance (held there or not); 503 "
                    "when that server is unreachable or no longer configured."
                ),
                "responses": {**_responses(audio)},
            },
        },
    }


def _speech_operation() -> dict[str, Any]:
    def envelope(text: str) -> dict[str, Any]:
        return {
            "description": text,
            "content": {"application/json": {"schema": _ref("ErrorEnvelope")}},
        }

    def query(name: str, text: str) -> dict[str, Any]:
        return {
            "name": name,
            "in": "query",
            "required": True,
            "description": text,
            "schema": {"type": "string"},
        }

    return {
        "get": {
            "security": [],
            "summary": "A synthesized speech file, for Asterisk (a signed, expiring URL; no token)",
            "parameters": [
                {
                    "name": "key",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                },
                query("expires", "Unix time after which the URL is refused"),
                query("sig", "HMAC-SHA256 of the path and expiry, hex"),
            ],
            "responses": {
                "200": {"description": "8 kHz 16-bit mono WAV", "content": {"audio/wav": {}}},
                "304": {"description": "unchanged (If-None-Match)"},
                "403": envelope("wrong or expired signature"),
                "404": envelope("no such speech file"),
            },
        }
    }


def _device_operations(plain_ok: dict[str, Any]) -> dict[str, dict[str, Any]]:
    account = _path_param("account_id")
    device = _path_param("device_id")
    body = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["data"],
                    "properties": {"data": _ref("Device")},
                }
            }
        },
    }
    if_match = {
        "name": "If-Match",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "write only if this is the current revision",
    }
    created = {**plain_ok, "description": "created: data carries the new device's id"}
    owner_filter = {
        "name": "filter_owner_id",
        "in": "query",
        "schema": {"type": "string"},
        "description": "only the devices this user owns",
    }
    paging = [
        {
            "name": "page_size",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
        },
        {
            "name": "start_key",
            "in": "query",
            "schema": {"type": "string"},
            "description": "the next_start_key of the previous page",
        },
        {
            "name": "paginate",
            "in": "query",
            "schema": {"type": "string", "enum": ["false"]},
            "description": "false: every device in one answer",
        },
    ]
    return {
        "/v2/accounts/{account_id}/devices": {
            "parameters": [account],
            "get": {
                "summary": "The account's devices, oldest first (Kazoo paging: next_start_key)",
                "description": "Each row: id, name, owner_id, enabled, username.",
                "parameters": [owner_filter, *paging],
                "responses": _responses(plain_ok),
            },
            "put": {
                "summary": "Create a device; answers it with its new id",
                "requestBody": body,
                "responses": {**_responses(plain_ok), "201": created},
            },
        },
        "/v2/accounts/{account_id}/devices/{device_id}": {
            "parameters": [account, device],
            "get": {"summary": "One device", "responses": _responses(plain_ok)},
            "post": {
                "summary": "Replace the device's document with the validated one",
                "parameters": [if_match],
                "requestBody": body,
                "responses": _responses(plain_ok),
            },
            "delete": {
                "summary": "Remove the device",
                "parameters": [if_match],
                "responses": _responses(plain_ok),
            },
        },
        "/v2/accounts/{account_id}/users/{user_id}/devices": {
            "parameters": [account, _path_param("user_id")],
            "get": {
                "summary": "The devices a user owns, oldest first (Kazoo paging)",
                "parameters": paging,
                "responses": _responses(plain_ok),
            },
        },
    }


def _login_operations(plain_ok: dict[str, Any]) -> dict[str, dict[str, Any]]:
    key_ok = {
        "description": "the account's api_key",
        "content": {"application/json": {"schema": _ref("ApiKeyEnvelope")}},
    }
    login_errors = {
        code: {
            "description": _ERRORS[code] if code != "401" else "wrong api_key",
            "content": {"application/json": {"schema": _ref("ErrorEnvelope")}},
        }
        for code in ("400", "401", "405", "413", "503")
    }
    return {
        "/v2/accounts/{account_id}/api_key": {
            "parameters": [_path_param("account_id")],
            "get": {
                "summary": "The account's api_key (64 hex characters, made on first need)",
                "responses": _responses(key_ok),
            },
            "put": {
                "summary": "Rotate the api_key: the old key and its api_auth sessions stop working",
                "responses": _responses(key_ok),
            },
        },
        "/v2/api_auth": {
            "put": {
                "summary": "Trade an api_key for a token (top-level auth_token; idle expiry 1 h)",
                "security": [],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["data"],
                                "properties": {
                                    "data": {
                                        "type": "object",
                                        "required": ["api_key"],
                                        "properties": {
                                            "api_key": {
                                                "type": "string",
                                                "pattern": "^[0-9a-f]{64}$",
                                            }
                                        },
                                    }
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "201": {
                        "description": "a token for the account of the key",
                        "content": {"application/json": {"schema": _ref("AuthEnvelope")}},
                    },
                    **login_errors,
                },
            }
        },
    }


@cache
def openapi_document() -> dict[str, Any]:
    account = _path_param("account_id")
    plain_ok = {
        "description": "ok",
        "content": {"application/json": {"schema": _ref("Envelope")}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "ari-metaflows", "version": __version__},
        "servers": [{"url": "/"}],
        "components": {
            "securitySchemes": {
                "token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"},
                "token_query": {"type": "apiKey", "in": "query", "name": "auth_token"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
            "schemas": {
                "Envelope": _envelope({}),
                "DocumentEnvelope": _envelope(_ref("MetaflowDocument")),
                "ErrorEnvelope": _error_envelope(),
                "ApiKeyEnvelope": _envelope(
                    {
                        "type": "object",
                        "required": ["api_key"],
                        "properties": {"api_key": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
                    }
                ),
                "AuthEnvelope": _envelope(
                    {
                        "type": "object",
                        "required": ["account_id"],
                        "properties": {"account_id": {"type": "string"}},
                    }
                ),
                "MetaflowDocument": _document_schema(),
                "MetaflowNode": _node_schema(),
                "Device": dict(DEVICE_SCHEMA),
                "CallflowAction": dict(REFS[CALLFLOW_ACTION_REF]),
                **{
                    f"ModuleData.{name}": dict(spec.schema)
                    for name, spec in sorted(module_specs().items())
                },
            },
        },
        "security": [{"token": []}, {"token_query": []}, {"bearer": []}],
        "paths": {
            "/v2/accounts/{account_id}/metaflows": _metaflow_operations([account]),
            "/v2/accounts/{account_id}/users/{user_id}/metaflows": _metaflow_operations(
                [account, _path_param("user_id")]
            ),
            "/v2/accounts/{account_id}/devices/{device_id}/metaflows": _metaflow_operations(
                [account, _path_param("device_id")]
            ),
            **_live_operations(plain_ok),
            **_device_operations(plain_ok),
            **_login_operations(plain_ok),
            "/healthz": {"get": {"security": [], "responses": {"200": plain_ok}}},
            "/metrics": {
                "get": {
                    "security": [],
                    "summary": "Prometheus text format",
                    "responses": {"200": {"description": "ok", "content": {"text/plain": {}}}},
                }
            },
            "/media/tts/{key}.wav": _speech_operation(),
            "/readyz": {
                "get": {
                    "security": [],
                    "responses": {
                        "200": plain_ok,
                        "503": {
                            "description": "a dependency is unavailable",
                            "content": {"application/json": {"schema": _ref("ErrorEnvelope")}},
                        },
                    },
                }
            },
        },
    }
