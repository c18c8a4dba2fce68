"""Reading one results file defensively: size, encoding, JSON, schema.

Nothing here raises on bad input: every failure becomes a ``Problem`` naming
the file and the JSON path, so ``validate`` and ``ingest`` can report all of
them at once and never show a traceback.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kompakt.results import ResultsFile
from leaderboard.problems import Problem, json_path

#: A results file holds one run: a few kilobytes. 2 MiB leaves room for hundreds of
#: tasks and notes while refusing files that would bloat every page and the database.
MAX_FILE_BYTES = 2 * 1024 * 1024
#: Deeper JSON than this is no results file (the schema is about 5 levels deep); the
#: limit also keeps Python's recursive JSON decoder far from its recursion limit.
MAX_DEPTH = 32


@dataclass(frozen=True)
class Loaded:
    path: Path
    name: str
    """File name as shown in messages (relative to the results root)."""
    result: ResultsFile | None
    raw: bytes
    problems: list[Problem]


def _depth(text: str) -> int:
    """Maximum nesting of brackets outside strings, computed without recursion."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} appears twice in one object")
        out[key] = value
    return out


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: Control characters (newline and tab allowed) and bidirectional overrides, which can
#: disguise text in a terminal or a page.
_BAD_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


def _scan(value: Any) -> list[tuple[tuple[Any, ...], str, str]]:
    """One walk over the parsed JSON: non-finite numbers (``1e999`` parses as inf) and
    strings with control or bidirectional-override characters, as (location, problem, expected)."""
    found = []
    stack: list[tuple[tuple[Any, ...], Any]] = [((), value)]
    while stack:
        here, item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                found.append((here, f"{item} is not a finite number", "a finite number"))
        elif isinstance(item, str):
            if _BAD_TEXT.search(item):
                found.append((here, "text contains control or bidirectional-override characters", "printable text (newlines and tabs allowed)"))
        elif isinstance(item, dict):
            for k, v in item.items():
                if _BAD_TEXT.search(k):
                    found.append(((*here, k), "key contains control or bidirectional-override characters", "printable keys"))
                stack.append(((*here, k), v))
        elif isinstance(item, list):
            stack.extend(((*here, i), v) for i, v in enumerate(item))
    return sorted(found, key=lambda f: repr(f[0]))


def parse_bytes(raw: bytes, name: str) -> tuple[ResultsFile | None, list[Problem]]:
    """Parse and schema-check the bytes of one results file."""
    if len(raw) > MAX_FILE_BYTES:
        return None, [Problem(name, "$", f"file is {len(raw):,} bytes", f"at most {MAX_FILE_BYTES:,} bytes")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return None, [Problem(name, "$", f"not UTF-8 text (byte {err.start})", "a UTF-8 encoded JSON file")]
    if _depth(text) > MAX_DEPTH:
        return None, [Problem(name, "$", "JSON nested too deeply", f"at most {MAX_DEPTH} levels")]
    try:
        data = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as err:
        return None, [Problem(name, "$", f"invalid JSON at line {err.lineno} column {err.colno}: {err.msg}", "a JSON object")]
    except (ValueError, RecursionError) as err:
        return None, [Problem(name, "$", f"invalid JSON: {err}", "a JSON object")]
    if not isinstance(data, dict):
        return None, [Problem(name, "$", f"top level is a JSON {type(data).__name__}", "a JSON object")]
    bad_values = _scan(data)
    if bad_values:
        return None, [Problem(name, json_path(loc), message, expected) for loc, message, expected in bad_values]
    try:
        return ResultsFile.model_validate(data), []
    except ValidationError as err:
        problems = []
        for e in err.errors(include_url=False):
            expected = ""
            if e["type"] == "missing":
                message = "required field is missing"
            elif e["type"] == "extra_forbidden":
                message = "unknown key (misspelt?)"
                expected = "only the keys the schema defines"
            else:
                message = f"{e['msg']}; got {_short(e.get('input'))}"
                ctx = e.get("ctx") or {}
                if "pattern" in ctx:
                    expected = f"a string matching {ctx['pattern']}"
                elif "expected" in ctx:
                    expected = str(ctx["expected"])
            problems.append(Problem(name, json_path(tuple(e["loc"])), message, expected))
        return None, problems


def load_file(path: Path, name: str) -> Loaded:
    """Read ``path`` (shown as ``name``) without following it outside the file system's rules."""
    try:
        if path.is_symlink():
            return Loaded(path, name, None, b"", [Problem(name, "$", "is a symbolic link", "a regular file")])
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return Loaded(path, name, None, b"", [Problem(name, "$", f"file is {size:,} bytes", f"at most {MAX_FILE_BYTES:,} bytes")])
        raw = path.read_bytes()
    except OSError as err:
        return Loaded(path, name, None, b"", [Problem(name, "$", f"cannot be read: {err.strerror}", "a readable file")])
    result, problems = parse_bytes(raw, name)
    return Loaded(path, name, result, raw, problems)
