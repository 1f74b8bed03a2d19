"""Validate ``report.json`` against ``c2net/schemas/report.schema.json``.

Uses the ``jsonschema`` package when it is installed; otherwise a small built-in validator that
implements the subset of JSON Schema draft 2020-12 the report schema uses (``type``, ``enum``,
``const``, ``properties``, ``required``, ``additionalProperties``, ``items``, ``minItems``,
``maxItems``, ``minimum``, ``maximum``, ``exclusiveMinimum``, ``minLength``, ``pattern``,
``allOf``, ``anyOf``, ``oneOf``, ``if``/``then``/``else`` and local ``$ref``). Unknown keywords
are ignored, as the specification asks.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, List

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "report.schema.json"


@lru_cache(maxsize=1)
def report_schema() -> dict:
    """The report schema as a dict (read once)."""
    with open(SCHEMA_PATH, encoding="utf-8") as f:
        return json.load(f)


def validation_errors(instance: Any, schema: dict | None = None) -> List[str]:
    """All schema violations of ``instance`` as ``"path: message"`` strings (empty = valid)."""
    schema = report_schema() if schema is None else schema
    try:
        import jsonschema  # type: ignore
    except ImportError:
        out: List[str] = []
        _check(instance, schema, schema, "$", out)
        return out
    validator = jsonschema.Draft202012Validator(schema)
    return [f"$.{'.'.join(str(p) for p in e.absolute_path)}: {e.message}"
            for e in validator.iter_errors(instance)]


def _type_ok(value: Any, name: str) -> bool:
    if name == "null":
        return value is None
    if name == "boolean":
        return isinstance(value, bool)
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if name == "string":
        return isinstance(value, str)
    if name == "array":
        return isinstance(value, list)
    if name == "object":
        return isinstance(value, dict)
    raise ValueError(f"unknown JSON type {name!r}")


def _resolve(ref: str, root: dict) -> dict:
    if not ref.startswith("#/"):
        raise ValueError(f"only local $ref is supported, got {ref!r}")
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _valid(value: Any, schema: Any, root: dict) -> bool:
    errs: List[str] = []
    _check(value, schema, root, "$", errs)
    return not errs


def _check(value: Any, schema: Any, root: dict, path: str, out: List[str]) -> None:  # noqa: C901
    if schema is True or schema == {}:
        return
    if schema is False:
        out.append(f"{path}: no value is allowed here")
        return
    if "$ref" in schema:
        _check(value, _resolve(schema["$ref"], root), root, path, out)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_type_ok(value, t) for t in types):
            out.append(f"{path}: {value!r} is not of type {' or '.join(types)}")
            return
    if "const" in schema and value != schema["const"]:
        out.append(f"{path}: {value!r} is not {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            out.append(f"{path}: {value} is less than {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            out.append(f"{path}: {value} is greater than {schema['maximum']}")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            out.append(f"{path}: {value} is not greater than {schema['exclusiveMinimum']}")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            out.append(f"{path}: {value!r} is too short")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            out.append(f"{path}: {value!r} does not match {schema['pattern']!r}")
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            out.append(f"{path}: {len(value)} items, expected at least {schema['minItems']}")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            out.append(f"{path}: {len(value)} items, expected at most {schema['maxItems']}")
        if "items" in schema:
            for i, item in enumerate(value):
                _check(item, schema["items"], root, f"{path}[{i}]", out)
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                out.append(f"{path}: '{key}' is a required property")
        props = schema.get("properties", {})
        for key, sub in props.items():
            if key in value:
                _check(value[key], sub, root, f"{path}.{key}", out)
        extra = schema.get("additionalProperties", True)
        for key in value:
            if key not in props:
                _check(value[key], extra, root, f"{path}.{key}", out)
    for sub in schema.get("allOf", []):
        _check(value, sub, root, path, out)
    if "anyOf" in schema and not any(_valid(value, s, root) for s in schema["anyOf"]):
        out.append(f"{path}: does not match any of the allowed forms (anyOf)")
    if "oneOf" in schema:
        n = sum(_valid(value, s, root) for s in schema["oneOf"])
        if n != 1:
            out.append(f"{path}: matches {n} of the oneOf forms, expected exactly 1")
    if "if" in schema:
        branch = "then" if _valid(value, schema["if"], root) else "else"
        if branch in schema:
            _check(value, schema[branch], root, path, out)
