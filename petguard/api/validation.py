"""Request validation (pure): the JSON of a body, a body against its schema, query parameters.

``parse_json`` refuses, before any field is looked at, what JSON or the journal cannot hold: NaN and
Infinity, numbers that overflow a float, integers of more than ``MAX_INT_DIGITS`` digits, nesting
deeper than ``MAX_DEPTH`` (scanned before the parser runs), and strings with NUL or lone surrogates
(no database stores them). ``validate`` then checks the body against its JSON Schema
(``petguard.api.schemas``, the very dicts ``docs/openapi.json`` publishes) with jsonschema-rs, and
turns the first error into a message that names the field, says what is wrong and what would be
right (``InvalidBody``, answered with 400). The field helpers (``check_object``, ``string_field`` ...)
serve ``petguard.api.alerts``, which reads the free-form Alertmanager payload itself.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import jsonschema_rs

from petguard.api.schemas import MAX_COUNT, MAX_INT_DIGITS, MAX_REASON, MAX_TIME, Schema
from petguard.errors import Permanent

#: The ``limit`` query parameter's bounds.
MAX_LIMIT = 1000
#: Deepest nesting of arrays and objects accepted (petguard's bodies nest 4 deep at most).
MAX_DEPTH = 32


class InvalidBody(Permanent):
    """A request body or query parameter is not what the API accepts (answered with 400)."""


def parse_json(raw: bytes) -> Any:
    """The JSON value of a request body, with only finite numbers, bounded integers, shallow nesting
    and strings every database can store.

    :raises InvalidBody: not UTF-8 JSON (the message says where it breaks), or a value JSON or the
        journal cannot hold (the message says which).
    """
    if not raw.strip():
        raise InvalidBody("the request body is empty: send a JSON object (Content-Type: application/json)")
    _check_depth(raw)
    try:
        value = json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float, parse_int=_bounded_int)
    except UnicodeDecodeError as exc:
        raise InvalidBody("the request body is not UTF-8 text: send a JSON object") from exc
    except json.JSONDecodeError as exc:
        where = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
        raise InvalidBody(f"the request body is not valid JSON ({where}): send a JSON object") from exc
    except RecursionError:
        raise InvalidBody(f"the request body nests arrays or objects too deeply: at most {MAX_DEPTH} levels") from None
    _check_values(value)
    return value


#: The tokens that matter to nesting, left to right in one pass: a JSON string (escapes included; an
#: unterminated one runs to the end, so no quote is scanned twice) or a bracket.
_NESTING_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*+"?|[\[\]{}]', re.DOTALL)


def _check_depth(raw: bytes) -> None:
    """Refuse deep nesting before the parser sees it: a RecursionError inside the C parser leaves
    CPython 3.11's recursion accounting wrong (a later ``ast.parse`` fails with "AST constructor
    recursion depth mismatch"), so the parser must never get that deep.

    :raises InvalidBody:
    """
    depth = 0
    for token in _NESTING_TOKENS.findall(raw):
        if token[:1] == b'"':
            continue
        depth += 1 if token in (b"[", b"{") else -1
        if depth > MAX_DEPTH:
            raise InvalidBody(f"the request body nests arrays or objects too deeply: at most {MAX_DEPTH} levels")


def _no_constant(name: str) -> Any:
    raise InvalidBody(f"the request body holds {name}, which is not a JSON number: send finite numbers only")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidBody(f"the number {text[:32]} in the request body is too large: send finite numbers only")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise InvalidBody(
            f"an integer in the request body has {len(text.lstrip('-'))} digits; at most {MAX_INT_DIGITS} are accepted"
        )
    return int(text)


def _check_values(value: Any) -> None:
    """Walk a parsed body (without recursion): depth, and every key and string storable (a string's
    error names its field: ``field 'domains[0].name'``).

    :raises InvalidBody:
    """
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        item, depth, where = stack.pop()
        if isinstance(item, str):
            check_text(item, f"field {where!r}" if where else "a string in the request body")
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise InvalidBody(f"the request body nests arrays or objects too deeply: at most {MAX_DEPTH} levels")
            if isinstance(item, list):
                stack.extend((child, depth + 1, f"{where}[{i}]") for i, child in enumerate(item))
                continue
            for key, child in item.items():
                check_text(key, "a field name in the request body")
                stack.append((child, depth + 1, f"{where}.{key}".lstrip(".")))


def check_text(value: str, label: str) -> str:
    """``value`` if every database can store it. :raises InvalidBody: NUL, or a lone UTF-16 surrogate."""
    if "\x00" in value:
        raise InvalidBody(f"{label} holds a NUL character (\\u0000): remove it")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidBody(f"{label} holds a lone UTF-16 surrogate (\\ud800-\\udfff): send valid Unicode") from None
    return value


# -- a body against its schema ---------------------------------------------------------------------
def validate(body: Any, schema: Schema) -> dict[str, Any]:
    """``body`` if it is valid against ``schema`` (an object schema of ``petguard.api.schemas``).

    :raises InvalidBody: the first error, in the order a person would fix them: the outermost first,
        and in one object its type, then unknown fields, then missing ones, then each field.
    """
    # NUL and lone surrogates first (parse_json refuses them already on the HTTP path): the validator
    # cannot even read a lone surrogate
    _check_values(body)
    errors = sorted(_validator(schema).iter_errors(body), key=_rank)
    if errors:
        raise InvalidBody(_message(errors[0], [e for e in errors if _is_missing(e, errors[0])], schema, body))
    return dict(body)


def _validator(schema: Schema) -> Any:
    """One compiled validator per schema dict, kept by its identity (the schema dicts are module
    constants of ``petguard.api.schemas``: they live as long as the process). Formats are checked:
    a ``date-time`` must be one."""
    key = id(schema)
    if key not in _VALIDATORS:
        _VALIDATORS[key] = (schema, jsonschema_rs.validator_for(schema, validate_formats=True))
    return _VALIDATORS[key][1]


_VALIDATORS: dict[int, tuple[Schema, Any]] = {}  # the schema is kept too: its id stays its own


#: Within one object: its type first, then unknown fields, then missing ones, then the fields (of a
#: field, its length before its content: a long value is not echoed).
_ORDER = {"Type": 0, "AdditionalProperties": 1, "Required": 2, "MaxLength": 3, "MaxItems": 3}


def _rank(error: Any) -> tuple[int, int]:
    """Outermost first (a field's errors are one level deeper than its object's), then ``_ORDER``."""
    return len(list(error.instance_path)), _ORDER.get(_kind(error), 4)


def _kind(error: Any) -> str:
    """The failed keyword's kind as jsonschema-rs names its class: ``Required``, ``Type``, ``Enum`` ..."""
    return type(error.kind).__name__


def _is_missing(error: Any, first: Any) -> bool:
    return bool(_kind(error) == "Required" and list(error.instance_path) == list(first.instance_path))


def _where(path: list[str | int]) -> tuple[str, str]:
    """(the enclosing object as a message names it, the prefix of a field in it): ``domains[0]``,
    ``domains[0].``; at the top: ``the body``, ``""``."""
    prefix = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).lstrip(".")
    return (prefix or "the body"), (f"{prefix}." if prefix else "")


def _subschema(schema: Schema, schema_path: list[str | int]) -> Schema:
    """The (sub)schema that holds the failed keyword (the last item of ``schema_path``)."""
    node: Any = schema
    for part in schema_path[:-1]:
        node = node[part]
    return dict(node)


def _message(error: Any, missing: list[Any], schema: Schema, body: Any) -> str:
    path = list(error.instance_path)
    kind, value = _kind(error), error.instance
    rule = _subschema(schema, list(error.schema_path))
    if kind == "Required":
        names = [m.kind.property for m in missing]
        return f"missing field(s) in {_where(path)[0]}: {', '.join(names)}"
    if kind == "AdditionalProperties":
        allowed = ", ".join(rule.get("properties", {}))
        return f"unknown field(s) in {_where(path)[0]}: {', '.join(sorted(error.kind.unexpected))}; allowed: {allowed}"
    if kind == "Type" and (rule.get("type") == "object"):
        return f"{_where(path)[0]} must be a JSON object, not {_json_type(value)}"
    what, prefix = _where(path[:-1])
    name = str(path[-1]) if path else what
    if kind == "Enum" and "then" in list(error.schema_path):
        # the one rule that depends on a sibling field: an agent event's detail must be its kind's
        event = _at(body, path[:-1]).get("kind")
        return f"field {prefix}{name!r} is {_short(value)}, not a detail of a {event} event"
    return _field_message(kind, f"{prefix}{name}", prefix, name, value, rule, error)


def _at(body: Any, path: list[str | int]) -> Any:
    for part in path:
        body = body[part]
    return body


def _field_message(kind: str, label: str, prefix: str, name: str, value: Any, rule: Schema, error: Any) -> str:
    """The message for one field: ``label`` (``domains[0].state``) in quotes as a whole for strings,
    arrays and booleans; ``prefix`` then ``'name'`` for choices and numbers (as before the schemas)."""
    expected = rule.get("type")
    if expected == "integer":
        return f"field {label!r} must be an integer from {rule['minimum']} to {rule['maximum']}, not {_short(value)}"
    if expected == "number":
        if kind == "Type":
            return f"field {prefix}{name!r} must be a number, not {_json_type(value)}"
        low, high = rule["minimum"], rule["maximum"]
        return f"field {prefix}{name!r} must be a number from {low:g} to {high:g}, not {_short(value)}"
    if kind == "Type":
        return f"field {label!r} must be {_A.get(str(expected), f'of type {expected}')}, not {_json_type(value)}"
    if kind == "MaxLength":
        return f"field {label!r} is {len(value)} characters long; at most {rule['maxLength']} are accepted"
    if kind == "MaxItems":
        return f"field {label!r} has {len(value)} items; at most {rule['maxItems']} are accepted: send several"
    if kind == "Enum":
        return f"field {prefix}{name!r} is {_short(value)}; expected one of: {', '.join(rule['enum'])}"
    if kind in ("Pattern", "MinLength") and isinstance(value, str) and not value.strip():
        return f"field {name!r} is empty: {rule.get('description', 'send a value')}"
    if kind == "Pattern":
        return f"field {prefix}{name!r} is {_short(value)}; {rule.get('description', 'not what is expected')}"
    return f"field {label!r}: {str(error.message)[:200]}"  # a rule without a message of its own: the validator's


_A = {"string": "a string", "boolean": "a boolean", "array": "an array", "object": "an object", "null": "null"}


def check_object(
    body: Any, required: Sequence[str], optional: Sequence[str] = (), what: str = "the body"
) -> dict[str, Any]:
    """``body`` as a dict with exactly the allowed fields.

    :raises InvalidBody: not an object, a required field missing, or an unknown field.
    """
    if not isinstance(body, dict):
        raise InvalidBody(f"{what} must be a JSON object, not {_json_type(body)}")
    unknown = sorted(set(body) - set(required) - set(optional))
    if unknown:
        allowed = ", ".join(list(required) + list(optional))
        raise InvalidBody(f"unknown field(s) in {what}: {', '.join(unknown)}; allowed: {allowed}")
    missing = [name for name in required if name not in body]
    if missing:
        raise InvalidBody(f"missing field(s) in {what}: {', '.join(missing)}")
    return body


def string_field(body: Mapping[str, Any], name: str, *, max_length: int = MAX_REASON, what: str = "") -> str:
    """A string field of ``body``; :raises InvalidBody: not a string, or too long."""
    value = body[name]
    label = f"{what}{name}"
    if not isinstance(value, str):
        raise InvalidBody(f"field {label!r} must be a string, not {_json_type(value)}")
    if len(value) > max_length:
        raise InvalidBody(f"field {label!r} is {len(value)} characters long; at most {max_length} are accepted")
    return check_text(value, f"field {label!r}")


def choice_field(body: Mapping[str, Any], name: str, choices: Sequence[str], what: str = "") -> str:
    """A string field that must be one of ``choices``; :raises InvalidBody:"""
    value = string_field(body, name, max_length=64, what=what)
    if value not in choices:
        raise InvalidBody(f"field {what}{name!r} is {value!r}; expected one of: {', '.join(choices)}")
    return value


def number_field(
    body: Mapping[str, Any], name: str, what: str = "", *, low: float = 0.0, high: float = MAX_TIME
) -> float:
    """A finite number field of ``body`` from ``low`` to ``high``; :raises InvalidBody:"""
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidBody(f"field {what}{name!r} must be a number, not {_json_type(value)}")
    number = float(value)  # parse_json bounds integers to MAX_INT_DIGITS: this cannot overflow
    if not (math.isfinite(number) and low <= number <= high):
        raise InvalidBody(f"field {what}{name!r} must be a number from {low:g} to {high:g}, not {_short(value)}")
    return number


def count_field(body: Mapping[str, Any], name: str) -> int:
    """A non-negative integer field, at most ``MAX_COUNT``; :raises InvalidBody:

    ``7.0`` is the integer 7, as JSON Schema (and so docs/openapi.json) counts integers."""
    value = body[name]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise InvalidBody(f"field {name!r} must be an integer from 0 to {MAX_COUNT}, not {_short(body[name])}")
    return value


def _short(value: Any) -> str:
    """A value for an error message, cut short (a 20-digit integer or a long string is not echoed whole)."""
    text = repr(value) if not isinstance(value, dict | list) else _json_type(value)
    return text if len(text) <= 24 else text[:20] + "..."


def list_field(body: Mapping[str, Any], name: str, max_items: int) -> list[Any]:
    """An array field with at most ``max_items`` items; :raises InvalidBody:"""
    value = body[name]
    if not isinstance(value, list):
        raise InvalidBody(f"field {name!r} must be an array, not {_json_type(value)}")
    if len(value) > max_items:
        raise InvalidBody(f"field {name!r} has {len(value)} items; at most {max_items} are accepted: send several")
    return value


def limit_param(value: str | None, default: int) -> int:
    """The ``limit`` query parameter: an integer from 1 to ``MAX_LIMIT``."""
    if value is None:
        return default
    try:
        limit = int(value)
    except ValueError:
        raise InvalidBody(f"query parameter 'limit' must be an integer, not {value!r}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidBody(f"query parameter 'limit' must be between 1 and {MAX_LIMIT}, not {limit}")
    return limit


#: Ids are 64-bit signed integers in every database petguard supports.
MAX_ID = 2**63 - 1


def int_param(name: str, value: str | None) -> int | None:
    """An optional integer query parameter (an id, 1 .. 2**63-1)."""
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise InvalidBody(f"query parameter {name!r} must be an integer id, not {value!r}") from None
    if not 1 <= number <= MAX_ID:
        raise InvalidBody(f"query parameter {name!r} must be an id between 1 and {MAX_ID}, not {number}")
    return number


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    for python_type, name in names.items():
        if isinstance(value, python_type):
            return name
    return "a number" if isinstance(value, int | float) else type(value).__name__
