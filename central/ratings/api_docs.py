"""The API reference pages, generated from the documents the code itself serves, so the reference
says what is served: the central server's wire API (django-ninja's schema of ``api.py``,
docs/reference/wire-api.md and openapi.json) and each terminal's invite API (``terminal/invite_api.py``'s
``OPENAPI``, docs/reference/invite-api.md and invite-openapi.json). A test checks all four are
current; ``rating-central api_docs`` writes them."""

from __future__ import annotations

import json

from .api import api


def documents() -> dict[str, dict]:
    """The files of docs/reference/, by name: each reference page and its OpenAPI document."""
    from terminal.invite_api import OPENAPI
    wire = api.get_openapi_schema()
    return {
        "wire-api.md": markdown(wire, "Wire API reference (v1)", [
            "Generated from the central server's OpenAPI schema (django-ninja, `central/ratings/api.py`) by",
            "`rating-central api_docs`; a test checks it is current. The machine-readable document is",
            "[openapi.json](openapi.json), and a running server serves it at `/api/v1/openapi.json`. How requests",
            "and answers are signed, and what each field means, is on the [Integrators](../integrators.md) page."]),
        "openapi.json": _json(wire),
        "invite-api.md": markdown(OPENAPI, "Invite API reference (each terminal)", [
            "Generated from the document each terminal's invite API serves at `GET /v1/openapi.json`",
            "(`terminal/invite_api.py`); a test checks it is current. The machine-readable document is",
            "[invite-openapi.json](invite-openapi.json). Tokens, signatures and who may call are on the",
            "[Integrators](../integrators.md) page."]),
        "invite-openapi.json": _json(OPENAPI),
    }


def _json(spec: dict) -> str:
    return json.dumps(spec, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def markdown(spec: dict, title: str, intro: list[str]) -> str:
    out = [f"# {title}", "", *intro, ""]
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            out += [f"## `{method.upper()} {path}`", "", op.get("summary", ""), ""]
            if op.get("description"):
                out += [op["description"].strip(), ""]
            params = [p for p in op.get("parameters", [])]
            if params:
                out += ["| parameter | in | required |", "| --- | --- | --- |"]
                out += [f"| `{p['name']}` | {p['in']} | {'yes' if p.get('required') else ''} |" for p in params]
                out.append("")
            answers = ", ".join(f"`{code}` {r.get('description', '')}".rstrip() for code, r in op.get("responses", {}).items())
            out += [f"Answers: {answers}", ""]
    return "\n".join(out).rstrip() + "\n"
