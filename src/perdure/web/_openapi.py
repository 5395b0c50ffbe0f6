"""The OpenAPI 3 document of ``perdure web`` (served at ``/openapi.json``).

Written by hand as data, next to the routes it describes; the fuzz test
(``tests/acceptance/test_openapi_fuzz.py``) checks every answer against it.
"""

from __future__ import annotations

from typing import Any

from .. import __version__

_TIME = {"type": "string", "format": "date-time"}
_TIME_OR_NULL = {"type": "string", "format": "date-time", "nullable": True}
_ANY: dict[str, Any] = {"description": "Any JSON value (perdure's tagged types stay tagged)."}
_ERROR_INFO = {
    "type": "object",
    "nullable": True,
    "description": "A recorded error: type, message, traceback.",
    "properties": {"type": {"type": "string"}, "message": {"type": "string"},
                   "traceback": {"type": "string"}},
}


# Strings that become database keys cannot hold NUL (Postgres text cannot).
_TEXT = {"type": "string", "pattern": "^[^\\u0000]*$"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_RUN_SUMMARY = {
    "id": {"type": "string"},
    "workflow": {"type": "string"},
    "status": _ref("RunStatus"),
    "idempotency_key": {"type": "string", "nullable": True},
    "created_at": _TIME,
    "updated_at": _TIME,
    "started_at": _TIME_OR_NULL,
    "completed_at": _TIME_OR_NULL,
    "duration_seconds": {"type": "number", "nullable": True},
}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"],
              "properties": {"error": {"type": "string"}}},
    "RunStatus": {"type": "string",
                  "enum": ["pending", "running", "completed", "failed", "cancelled"]},
    "RunSummary": {"type": "object", "required": list(_RUN_SUMMARY), "properties": _RUN_SUMMARY},
    "StartRun": {
        "type": "object",
        "required": ["workflow"],
        "additionalProperties": False,
        "properties": {
            "workflow": {**_TEXT, "minLength": 1,
                         "description": "A registered workflow name."},
            "args": {"type": "array", "items": _ANY,
                     "description": "Positional arguments (default none)."},
            "idempotency_key": {**_TEXT, "minLength": 1, "nullable": True,
                                "description": "Same key, same run: started once."},
        },
    },
    "Attempt": {
        "type": "object",
        "required": ["attempt", "status", "started_at", "ended_at", "error"],
        "properties": {
            "attempt": {"type": "integer"},
            "status": {"type": "string",
                       "enum": ["running", "retrying", "completed", "failed"]},
            "started_at": _TIME_OR_NULL,
            "ended_at": _TIME_OR_NULL,
            "retry_after": _TIME_OR_NULL,
            "error": _ERROR_INFO,
        },
    },
    "Step": {
        "type": "object",
        "required": ["correlation_id", "name", "status", "attempt", "created_at", "attempts"],
        "properties": {
            "correlation_id": {"type": "string"},
            "name": {"type": "string"},
            "status": {"type": "string", "enum": ["pending", "running", "completed", "failed"]},
            "attempt": {"type": "integer", "description": "Attempts started so far."},
            "created_at": _TIME,
            "started_at": _TIME_OR_NULL,
            "completed_at": _TIME_OR_NULL,
            "retry_after": _TIME_OR_NULL,
            "output": _ANY,
            "error": _ERROR_INFO,
            "attempts": {"type": "array", "items": _ref("Attempt")},
        },
    },
    "Wait": {
        "type": "object",
        "required": ["correlation_id", "status", "resume_at", "created_at", "completed_at"],
        "properties": {
            "correlation_id": {"type": "string"},
            "status": {"type": "string", "enum": ["waiting", "completed"]},
            "resume_at": _TIME,
            "created_at": _TIME,
            "completed_at": _TIME_OR_NULL,
        },
    },
    "Hook": {
        "type": "object",
        "required": ["run_id", "correlation_id", "token", "status", "is_webhook", "created_at",
                     "disposed_at"],
        "properties": {
            "run_id": {"type": "string"},
            "correlation_id": {"type": "string"},
            "token": {"type": "string"},
            "status": {"type": "string", "enum": ["active", "disposed"]},
            "is_webhook": {"type": "boolean"},
            "created_at": _TIME,
            "disposed_at": _TIME_OR_NULL,
            "received": {"type": "integer", "description": "Payloads delivered so far."},
        },
    },
    "Stream": {
        "type": "object",
        "required": ["name", "chunks", "closed"],
        "properties": {"name": {"type": "string"}, "chunks": {"type": "integer"},
                       "closed": {"type": "boolean"}},
    },
    "Event": {
        "type": "object",
        "required": ["seq", "type", "correlation_id", "data", "created_at"],
        "properties": {
            "seq": {"type": "integer"},
            "type": {"type": "string"},
            "correlation_id": {"type": "string", "nullable": True},
            "data": {"type": "object", "nullable": True, "additionalProperties": True},
            "created_at": _TIME,
        },
    },
    "RunDetail": {
        "type": "object",
        "required": [*_RUN_SUMMARY, "input", "output", "error", "terminal", "event_count",
                     "steps", "waits", "hooks", "streams"],
        "properties": {
            **_RUN_SUMMARY,
            "input": {**_ANY, "description": "The positional arguments the run started with."},
            "output": {**_ANY, "description": "The return value (completed runs)."},
            "error": _ERROR_INFO,
            "terminal": {"type": "boolean"},
            "event_count": {"type": "integer"},
            "steps": {"type": "array", "items": _ref("Step")},
            "waits": {"type": "array", "items": _ref("Wait")},
            "hooks": {"type": "array", "items": _ref("Hook")},
            "streams": {"type": "array", "items": _ref("Stream")},
        },
    },
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _err(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


_401 = {"401": _err("Missing or wrong bearer token (when PERDURE_API_TOKEN is set).")}
_400 = {"400": _err("Bad parameter or body.")}
_404_RUN = {"404": _err("No such run.")}
_413 = {"413": _err("Request body over the size limit.")}
_409 = {"409": _err("Refused by the event log (e.g. the entity already ended).")}


def _obj(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": list(properties), "properties": properties}


def _param(name: str, where: str, schema: dict[str, Any], description: str,
           required: bool = False) -> dict[str, Any]:
    if schema.get("type") == "string" and "enum" not in schema and name != "Last-Event-ID":
        schema = {**_TEXT, **schema}
        if where == "query":
            schema["minLength"] = 1  # an empty parameter is refused: leave it out
    return {"name": name, "in": where, "required": required or where == "path",
            "schema": schema, "description": description}


_RUN_ID = _param("run_id", "path", {"type": "string"}, "The run's id.")
_TIME_QUERY = {
    "anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"},
              {"type": "string", "pattern": "^([0-9]{1,12}(ms|s|m|h|d|w))+$"},
              {"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?$"}],
    "minLength": 1,
    "description": "ISO 8601 time or date (UTC unless an offset is given), a duration "
                   "ago (30s, 15m, 1h, 2d, 1h30m), or epoch seconds.",
}


def _paths() -> dict[str, Any]:
    run_get = {"tags": ["runs"], "parameters": [_RUN_ID]}
    return {
        "/api/runs": {
            "post": {
                "tags": ["runs"], "operationId": "startRun",
                "summary": "Start a run of a registered workflow",
                "requestBody": {"required": True,
                                "content": {"application/json": {"schema": _ref("StartRun")}}},
                "responses": {"201": _json(_ref("RunSummary"), "Started (or, with an "
                                           "idempotency key already used, that run)."),
                              **_400, **_401, "404": _err("No such workflow."), **_409, **_413},
            },
            "get": {
                "tags": ["runs"], "operationId": "listRuns", "summary": "List runs, newest first",
                "parameters": [
                    _param("status", "query", _ref("RunStatus"), "Only runs in this status."),
                    _param("workflow", "query", {"type": "string"}, "Only this workflow."),
                    _param("since", "query", _TIME_QUERY, "Created after this time."),
                    _param("until", "query", _TIME_QUERY, "Created before this time."),
                    _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000,
                                              "default": 50}, "Page size."),
                    _param("cursor", "query", {"type": "string"},
                           "next_cursor of the previous page."),
                ],
                "responses": {"200": _json(_obj(
                    runs={"type": "array", "items": _ref("RunSummary")},
                    next_cursor={"type": "string", "nullable": True}), "A page of runs."),
                    **_400, **_401},
            },
        },
        "/api/runs/{run_id}": {"get": {
            **run_get, "operationId": "getRun",
            "summary": "A run: status, timings, input, output, error, steps, waits, hooks",
            "responses": {"200": _json(_ref("RunDetail"), "The run."), **_400, **_401,
                          **_404_RUN},
        }},
        "/api/runs/{run_id}/events": {"get": {
            "tags": ["runs"], "operationId": "listEvents", "summary": "A run's event log",
            "parameters": [
                _RUN_ID,
                _param("after_seq", "query", {"type": "integer", "minimum": 0, "maximum": 2**62,
                                              "default": 0},
                       "Only events after this seq."),
                _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 10000},
                       "At most this many events."),
            ],
            "responses": {"200": _json(_obj(events={"type": "array", "items": _ref("Event")}),
                                       "Events in seq order."), **_400, **_401, **_404_RUN},
        }},
        "/api/runs/{run_id}/steps": {"get": {
            **run_get, "operationId": "listSteps", "summary": "A run's steps with attempts",
            "responses": {"200": _json(_obj(steps={"type": "array", "items": _ref("Step")}),
                                       "Steps in creation order."), **_400, **_401,
                          **_404_RUN},
        }},
        "/api/runs/{run_id}/cancel": {"post": {
            **run_get, "operationId": "cancelRun", "summary": "Cancel a run",
            "responses": {"200": _json(_obj(
                id={"type": "string"},
                cancelled={"type": "boolean",
                           "description": "False when the run had already ended."},
                status=_ref("RunStatus")), "The run's status after the cancel."),
                **_400, **_401, **_404_RUN, **_409},
        }},
        "/api/runs/{run_id}/streams": {"get": {
            **run_get, "operationId": "listStreams", "summary": "A run's streams",
            "responses": {"200": _json(_obj(streams={"type": "array", "items": _ref("Stream")}),
                                       "Streams."), **_400, **_401, **_404_RUN},
        }},
        "/api/runs/{run_id}/streams/{name}": {"get": {
            "tags": ["runs"], "operationId": "readStream",
            "summary": "A stream's chunks as Server-Sent Events, live until it ends",
            "description": (
                "One SSE event per chunk: `id` is the chunk index; `data` is JSON, "
                '`{"type": "bytes", "base64": ...}` for bytes, else the value. At the end '
                "of the stream: `event: end` and the connection closes (an EventSource "
                "must then close). Resumes after `Last-Event-ID` (reconnecting "
                "EventSource) or from `start_index`."),
            "parameters": [
                _RUN_ID,
                _param("name", "path", {"type": "string"}, "The stream's name "
                       "('default' for get_writable())."),
                _param("start_index", "query", {"type": "integer", "minimum": -(2**62),
                                                "maximum": 2**62, "default": 0},
                       "First chunk index; negative counts back from the tail."),
                _param("Last-Event-ID", "header", {"type": "string", "pattern": "^[0-9]+$"},
                       "Resume after this chunk index (wins over start_index)."),
                _param("access_token", "query", {"type": "string"},
                       "The API token, for EventSource clients that cannot send headers."),
            ],
            "responses": {"200": {"description": "text/event-stream of chunks.",
                                  "content": {"text/event-stream": {"schema": {
                                      "type": "string"}}}},
                          **_400, **_401, **_404_RUN},
        }},
        "/api/hooks": {"get": {
            "tags": ["hooks"], "operationId": "listHooks", "summary": "List hooks",
            "parameters": [
                _param("status", "query", {"type": "string", "enum": ["active", "disposed"]},
                       "Only hooks in this status."),
                _param("run_id", "query", {"type": "string"}, "Only this run's hooks."),
                _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000,
                                          "default": 100}, "Page size."),
                _param("cursor", "query", {"type": "string"},
                       "next_cursor of the previous page."),
            ],
            "responses": {"200": _json(_obj(hooks={"type": "array", "items": _ref("Hook")},
                                            next_cursor={"type": "string", "nullable": True}),
                                       "A page of hooks."), **_400, **_401},
        }},
        "/api/hooks/{token}/resume": {"post": {
            "tags": ["hooks"], "operationId": "resumeHook",
            "summary": "Deliver a payload (the JSON body; empty means null) to a live hook",
            "parameters": [_param("token", "path", {"type": "string"}, "The hook's token.")],
            "requestBody": {"required": False,
                            "content": {"application/json": {"schema": _ANY}}},
            "responses": {"200": _json(_obj(token={"type": "string"},
                                            resumed={"type": "boolean"}), "Delivered."),
                          **_400, **_401, "404": _err("No live hook has this token."),
                          **_409, **_413},
        }},
        "/api/workflows": {"get": {
            "tags": ["workflows"], "operationId": "listWorkflows",
            "summary": "Workflow names that can be started",
            "responses": {"200": _json(_obj(workflows={"type": "array",
                                                       "items": {"type": "string"}}),
                                       "Registered workflow names."), **_401},
        }},
        "/webhooks/{token}": {"post": {
            "tags": ["webhooks"], "operationId": "webhook", "security": [],
            "summary": "Resume the webhook made by create_webhook() with this request",
            "description": (
                "No API token: the 128-bit token in the URL is the secret. A JSON body "
                'is the payload; any other body becomes `{"body": text or {"base64": ...}, '
                '"headers": {...}, "content_type": ...}`. Only hooks made by '
                "create_webhook() answer here."),
            "parameters": [_param("token", "path", {"type": "string"}, "The webhook token.")],
            "requestBody": {"required": False, "content": {
                "application/json": {"schema": _ANY},
                "text/plain": {"schema": {"type": "string"}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            }},
            "responses": {"202": _json(_obj(accepted={"type": "boolean"}), "Delivered."),
                          **_400, "404": _err("No live webhook has this token."), **_409,
                          **_413},
        }},
    }


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "perdure",
            "version": __version__,
            "description": ("Start, inspect and steer durable workflow runs. With "
                            "PERDURE_API_TOKEN set, every /api route needs "
                            "`Authorization: Bearer <token>`."),
        },
        "paths": _paths(),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
