"""``json.dumps``/``json.loads`` with default options, straight from CPython's ``_json``.

Why: ``import json`` imports ``re`` (and with it ``enum``, ``functools``, ``collections``):
~31 M instructions, as much as all of ``vfctl list --json``'s work on a typical host
(benchmarks/README.md, sixth round). ``json`` itself drives the same C accelerator for these
options (Lib/json/encoder.py ``JSONEncoder.iterencode`` builds ``c_make_encoder`` when
``indent`` is None; Lib/json/decoder.py ``JSONDecoder`` hands itself to ``c_make_scanner``),
so the text and the objects are the same. Anything unusual goes to ``json`` itself: a value
the C encoder refuses, text it cannot scan, a build without ``_json``, or an accelerator whose
behaviour differs from the check below (a future CPython), so errors and edge cases stay
``json``'s own. tests/core/test_jsoncodec.py compares both on a corpus.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing's own flag without importing typing (start-up)
if TYPE_CHECKING:
    from typing import Any

_WS = " \t\n\r"  # json.decoder.WHITESPACE's characters
_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


class _Context:
    """What ``c_make_scanner`` reads from a JSONDecoder with default options."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


def _no_default(o: object) -> object:
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def _accelerator() -> tuple[Any, Any, Any] | None:
    """(encoder of a value, string encoder, scanner), or None where ``json`` must serve."""
    try:
        import _json

        enc = _json.encode_basestring_ascii
        make = _json.make_encoder
        scan = _json.make_scanner(_Context())  # type: ignore[arg-type]  # its attributes

        def encode(o: object) -> Any:
            # JSONEncoder's defaults: check_circular, allow_nan, separators (", ", ": ")
            return make({}, _no_default, enc, None, ": ", ", ", False, False, True)(o, 0)

        sample: dict[str, object] = {"a": [1, -2.5, None, True, False, 'é\n"', {}], "b": {"c": []}}
        text = '{"a": [1, -2.5, null, true, false, "\\u00e9\\n\\"", {}], "b": {"c": []}}'
        if "".join(encode(sample)) != text or scan(text, 0) != (sample, len(text)):
            return None
        return encode, enc, scan
    except Exception:
        return None


_ACC = _accelerator()


def dumps(o: object) -> str:
    """``json.dumps(o)``."""
    if _ACC is not None:
        if type(o) is str:
            return str(_ACC[1](o))
        try:
            return "".join(_ACC[0](o))
        except (TypeError, ValueError, RecursionError):
            pass  # json raises its own error (or encodes a subclass its own way)
    import json

    return json.dumps(o)


def dumps_str(s: str) -> str:
    """``json.dumps(s)`` of a string (``json.encoder.encode_basestring_ascii``)."""
    if _ACC is not None:
        return str(_ACC[1](s))
    from json.encoder import encode_basestring_ascii

    return encode_basestring_ascii(s)


def loads(s: str) -> Any:
    """``json.loads(s)`` of a str."""
    if _ACC is not None and type(s) is str and not s.startswith("\ufeff"):
        start = len(s) - len(s.lstrip(_WS))
        try:
            obj, end = _ACC[2](s, start)
        except (StopIteration, ValueError, RecursionError):
            pass  # json raises its own error
        else:
            if not s[end:].strip(_WS):
                return obj
    import json

    return json.loads(s)
