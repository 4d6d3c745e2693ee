"""The one reader of request bodies refuses what would otherwise reach an endpoint as a RecursionError,
an OverflowError or an infinite number; the writer never emits a bare NaN or Infinity."""

from __future__ import annotations

import json

import pytest

from crowdstream.stream.web.bodies import MAX_DEPTH, BodyError, dumps, nesting_depth, parse_body


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, f"deeper than {MAX_DEPTH} levels"),
        (b'{"zones": ' + b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b"}", f"deeper than {MAX_DEPTH} levels"),
        (b'{"threshold": 1e400}', "number 1e400 is out of range"),
        (b'{"threshold": -1e400}', "number -1e400 is out of range"),
        (b'{"points": [[' + b"1" + b"0" * 400 + b", 1]]}", "is out of range"),
        (b'{"points": [[' + b"9" * 5000 + b", 1]]}", "is out of range"),
        (b'{"area_m2": Infinity}', "Infinity is not a JSON number"),
        (b'{"area_m2": -Infinity}', "-Infinity is not a JSON number"),
        (b'{"area_m2": NaN}', "NaN is not a JSON number"),
        (b'{"x": 9007199254740993}', "is out of range"),
        (b"\xff\xfe", "not UTF-8"),
        (b'{"a": ', "not valid JSON"),
    ],
)
def test_hostile_bodies_are_refused_with_a_reason(raw: bytes, message: str) -> None:
    with pytest.raises(BodyError, match=message):
        parse_body(raw)


def test_ordinary_bodies_pass_unchanged() -> None:
    body = {"zones": [{"name": "q [1]", "polygon": [[0, 0.5], [9007199254740992, 1e15], [3, 4]], "x": None}]}
    assert parse_body(json.dumps(body).encode()) == body
    assert parse_body(b'{"s": "[[[[[[[[[[[[[[[[[[[[[[\\"]]]"}') == {"s": "[" * 22 + '"]]]'}


def test_nesting_depth_ignores_brackets_inside_strings() -> None:
    assert nesting_depth('{"a": [[1]], "b": "[[[[{{{{"}') == 3
    assert nesting_depth('"\\"[[["') == 0 and nesting_depth("5") == 0


def test_answers_carry_null_for_numbers_json_cannot_hold() -> None:
    text = dumps({"count": float("inf"), "zones": [{"density": float("nan"), "count": 2.5}], "t": (1.0,)})
    assert json.loads(text, parse_constant=lambda name: pytest.fail(name)) == {
        "count": None,
        "zones": [{"density": None, "count": 2.5}],
        "t": [1.0],
    }
