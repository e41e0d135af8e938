"""The gateway's OpenAPI document: the control plane as FastAPI describes it, told the
truth about errors, and the data plane (``gateway.dataplane_openapi``).

FastAPI documents a 422 with its own validation-error body on every route that takes
input. Here every error is ``{"error": {"code": ..., "message": ...}}`` with a stable code,
and input that fails validation is a 400 ``invalid_request`` (``gateway.errors``), so the
document says that instead: a 400 where FastAPI would say 422, and the error body as every
operation's ``default`` response. It also puts integers' bounds back as integers: FastAPI's
OpenAPI model holds them as floats, where the money bound, 2**63 - 1, becomes 2**63, and
clients generated from the document would send amounts the API refuses.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from apicredits.gateway.dataplane_openapi import SECURITY_SCHEMES, data_plane_paths
from apicredits.money import MAX_MICRO

ERROR = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {
                    "type": "string",
                    "description": "Stable: invalid_request, unauthorized, forbidden, "
                    "not_found, conflict, insufficient_credits, database_unavailable, ...",
                },
                "message": {"type": "string"},
                "field": {"type": "string", "description": "the input at fault, if one is"},
                "problems": {
                    "type": "array",
                    "description": "every field that failed validation",
                    "items": {
                        "type": "object",
                        "properties": {"field": {"type": "string"}, "problem": {"type": "string"}},
                    },
                },
            },
            "additionalProperties": True,
        }
    },
}
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
_BODY = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def document_gateway(app: FastAPI) -> None:
    """Make ``app``'s OpenAPI document the gateway's: its errors as they are, the data
    plane beside the control plane."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        _integer_bounds(schema)
        schemas["Error"] = ERROR
        schema["components"].setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
        schema["paths"] = {**data_plane_paths(), **schema.get("paths", {})}
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                if responses.pop("422", None) is not None:
                    responses["400"] = {
                        "description": "invalid_request: malformed, or failed validation",
                        **_BODY,
                    }
                # (the provider-compatible routes have their own: the provider's shape)
                responses.setdefault(
                    "default", {"description": "An error, with a stable code", **_BODY}
                )
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _integer_bounds(node: object) -> None:
    if isinstance(node, dict):
        if node.get("type") == "integer":
            for key in _BOUNDS:
                bound = node.get(key)
                if isinstance(bound, float):  # exact below 2**53; the money bound above
                    node[key] = MAX_MICRO if bound == float(MAX_MICRO) else int(bound)
        for value in node.values():
            _integer_bounds(value)
    elif isinstance(node, list):
        for value in node:
            _integer_bounds(value)
