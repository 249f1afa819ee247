"""The OpenAPI 3.1 document, made from the :class:`~miniapp_api.http.Endpoint` table and the pydantic
models (JSON Schema 2020-12, which OpenAPI 3.1 uses as is), and a plain HTML page describing it."""

from __future__ import annotations

import html
import json
from typing import Any, Final

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from miniapp_api import schemas as s
from miniapp_api.http import IDEMPOTENCY_HEADER, Endpoint

REF: Final = "#/components/schemas/{model}"
_STATUS_TEXT: Final = {
    200: "OK",
    201: "Created",
    400: "Bad request (invalid JSON, cursor or Idempotency-Key)",
    401: "No valid session token or API key",
    403: "Forbidden (an erased account, another Zalo user)",
    404: "Not found",
    409: "Refused in the current state (insufficient_points, sold_out, voucher_used...)",
    413: "Body too large",
    415: "Body is not application/json",
    422: "Validation error or a refused value",
    429: "Too many requests (see Retry-After)",
    503: "Zalo or the service is unavailable",
}


def build_document(title: str, version: str, prefix: str, endpoints: list[Endpoint]) -> dict[str, Any]:
    models: list[tuple[type[BaseModel], Any]] = [(s.ErrorBody, "serialization")]
    for endpoint in endpoints:
        if endpoint.body is not None:
            models.append((endpoint.body, "validation"))
        if endpoint.response is not None:
            models.append((endpoint.response, "serialization"))
    refs, defs = models_json_schema(models, ref_template=REF)
    schemas = defs.get("$defs", {})
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        operation: dict[str, Any] = {
            "operationId": endpoint.operation_id,
            "summary": endpoint.summary,
            "tags": [endpoint.tag],
            "parameters": _parameters(endpoint),
            "responses": _responses(endpoint, refs),
        }
        if endpoint.description:
            operation["description"] = endpoint.description
        if endpoint.auth == "bearer":
            operation["security"] = [{"session": []}]
        elif endpoint.auth == "apikey":
            operation["security"] = [{"apiKey": []}]
        else:
            operation["security"] = []
        if endpoint.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(endpoint.body, "validation")]}},
            }
        paths.setdefault(prefix + endpoint.path, {})[endpoint.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "session": {"type": "http", "scheme": "bearer", "description": "POST /auth/login"},
                "apiKey": {"type": "http", "scheme": "bearer", "description": "loyalty apikey create"},
            },
        },
    }


def _parameters(endpoint: Endpoint) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
        }
        for name in endpoint.path_params
    ]
    if endpoint.query is not None:
        schema = endpoint.query.model_json_schema(ref_template=REF)
        required = set(schema.get("required", ()))
        for name, prop in schema.get("properties", {}).items():
            params.append(
                {"name": name, "in": "query", "required": name in required, "schema": _without_null(prop)}
            )
    if endpoint.idempotent:
        params.append(
            {
                "name": IDEMPOTENCY_HEADER,
                "in": "header",
                "required": False,
                "description": "the same key replays the first answer (kept 24 hours)",
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
            }
        )
    return params


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or text: drop the ``null`` branch of an optional one."""
    options = prop.get("anyOf")
    if not options:
        return prop
    kept = [option for option in options if option.get("type") != "null"]
    rest = {k: v for k, v in prop.items() if k != "anyOf" and not (k == "default" and v is None)}
    return {**kept[0], **rest} if len(kept) == 1 else {**rest, "anyOf": kept}


def _responses(endpoint: Endpoint, refs: dict[Any, Any]) -> dict[str, Any]:
    ok_schema = (
        refs[(endpoint.response, "serialization")] if endpoint.response is not None else {"type": "object"}
    )
    responses: dict[str, Any] = {
        str(endpoint.status): {
            "description": _STATUS_TEXT.get(endpoint.status, "OK"),
            "content": {"application/json": {"schema": ok_schema}},
        }
    }
    error = {"application/json": {"schema": refs[(s.ErrorBody, "serialization")]}}
    for status in sorted(set(endpoint.errors)):
        responses[str(status)] = {"description": _STATUS_TEXT.get(status, "Error"), "content": error}
    return responses


def docs_page(document: dict[str, Any], spec_url: str) -> str:
    """A self-contained page (no scripts, no outside assets) listing every operation and its models."""
    esc = html.escape
    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{esc(document['info']['title'])}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
        "code,pre{background:#f4f4f4;padding:.1rem .3rem}pre{padding:.6rem;overflow:auto}"
        ".m{font-weight:bold;display:inline-block;min-width:4.5rem}</style></head><body>",
        f"<h1>{esc(document['info']['title'])}</h1>",
        f"<p>OpenAPI 3.1 document: <a href='{esc(spec_url)}'>{esc(spec_url)}</a>. "
        'Errors are <code>{"error": {"code", "message"}}</code>.</p>',
    ]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            out.append(f"<h3><span class='m'>{esc(method.upper())}</span> <code>{esc(path)}</code></h3>")
            out.append(f"<p>{esc(operation['summary'])}. {esc(operation.get('description', ''))}</p>")
            auth = "none" if not operation["security"] else next(iter(operation["security"][0]))
            out.append(f"<p>Auth: <code>{esc(auth)}</code>. Responses: ")
            out.append(", ".join(f"<code>{esc(code)}</code>" for code in operation["responses"]) + "</p>")
            body = operation.get("requestBody")
            if body is not None:
                ref = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
                schema = document["components"]["schemas"][ref]
                out.append(f"<pre>{esc(json.dumps(schema.get('properties', {}), indent=1))}</pre>")
    out.append("</body></html>")
    return "".join(out)
