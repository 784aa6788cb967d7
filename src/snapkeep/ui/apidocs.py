"""The REST API's reference at ``/docs``, drawn on the server from the service's own OpenAPI document.

FastAPI's ``/docs`` and ``/redoc`` load Swagger UI and ReDoc from a CDN: a third-party request from every
reader, and scripts this service does not ship, which its content security policy rightly refuses. This page
is plain HTML like the rest of the UI: every operation with its parameters, body and answers, and every
schema with its fields. Public, like ``/openapi.json`` itself: it describes the API, no data in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from snapkeep.ui.templating import render

router = APIRouter(include_in_schema=False)
_METHODS = ("get", "post", "put", "patch", "delete")


@dataclass(frozen=True)
class Field:
    name: str
    where: str  # query, path, header, or "body" for a schema's property
    type: str
    required: bool
    description: str


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    description: str
    parameters: list[Field]
    body: str | None  # the request body's type
    answers: list[tuple[str, str, str]]  # (status, description, type)

    @property
    def anchor(self) -> str:
        return f"{self.method}-{self.path}".replace("/", "-").replace("{", "").replace("}", "")


def type_of(schema: dict[str, Any]) -> str:
    """A schema as a reader names its type: ``Volume``, ``list of Snapshot``, ``string or null``."""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    for combined in ("anyOf", "oneOf", "allOf"):
        if combined in schema:
            return " or ".join(type_of(s) for s in schema[combined])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {type_of(schema.get('items', {}))}"
    if "enum" in schema:
        return " | ".join(str(v) for v in schema["enum"])
    return str(kind) + (f" ({schema['format']})" if "format" in schema else "")


def _parameter(p: dict[str, Any]) -> Field:
    return Field(p["name"], p["in"], type_of(p.get("schema", {})), p.get("required", False), p.get("description", ""))


def _body_type(content: dict[str, Any]) -> str:
    return "; ".join(f"{type_of(c.get('schema', {}))} ({media})" for media, c in content.items())


def operations(document: dict[str, Any]) -> list[Operation]:
    found = []
    for path, item in document.get("paths", {}).items():
        for method in _METHODS:
            op = item.get(method)
            if op is None:
                continue
            parameters = [_parameter(p) for p in op.get("parameters", [])]
            body = op.get("requestBody")
            answers = [
                (code, answer.get("description", ""), _body_type(answer.get("content", {})))
                for code, answer in op.get("responses", {}).items()
            ]
            found.append(
                Operation(
                    method=method.upper(),
                    path=path,
                    summary=op.get("summary", ""),
                    description=op.get("description", ""),
                    parameters=parameters,
                    body=_body_type(body.get("content", {})) if body else None,
                    answers=answers,
                )
            )
    return found


def schemas(document: dict[str, Any]) -> dict[str, list[Field]]:
    """Every named schema with its fields, by name."""
    found = {}
    for name, schema in sorted(document.get("components", {}).get("schemas", {}).items()):
        required = set(schema.get("required", ()))
        found[name] = [
            Field(field, "body", type_of(spec), field in required, spec.get("description", ""))
            for field, spec in schema.get("properties", {}).items()
        ]
    return found


@router.get("/docs")
def api_reference(request: Request) -> Response:
    document = request.app.openapi()
    return render(
        request,
        "apidocs/reference.html",
        None,
        info=document.get("info", {}),
        operations=operations(document),
        schemas=schemas(document),
    )
