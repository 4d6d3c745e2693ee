"""The configuration reference (docs/configuration.md), written from the pydantic models themselves.

`crowdstream config reference` prints it (`crowdstream.stream.cli.config_reference`, which adds the options
of `serve` that override keys); tests/test_config_reference.py fails when the file in docs/
differs from what this module writes, so a field added, renamed or re-described in the models shows up
in the reference with the same commit. Every key is listed with its type, limits, default and description.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import PurePath
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from crowdstream.stream.config import ENV_PREFIX, ServiceConfig

GENERATED_BY = "crowdstream config reference > docs/configuration.md"

INTRO = f"""\
# Configuration reference

<!-- Written by `{GENERATED_BY}` from the pydantic models
(crowdstream/stream/config.py and the sections it imports); tests/test_config_reference.py fails when
this file differs from what that command prints. Edit the models' descriptions, not this file. -->

`crowdstream serve -c FILE` reads one YAML file. `crowdstream config example` prints a commented one that
`serve` accepts as it is (the demo clip with two zones); start from it and change what you need. Without
`-c`, every key below has its default and the one camera is the bundled demo clip.

- **Unknown keys are errors**, and so are numbers out of range, NaN and infinity: `serve` exits with one
  line naming the file, the key and what was expected.
- **The environment overrides the file**: `{ENV_PREFIX}<SECTION>__<KEY>`, with list items by position, e.g.
  `{ENV_PREFIX}REDIS__URL=redis://redis:6379/0`, `{ENV_PREFIX}HTTP__PORT=9000`,
  `{ENV_PREFIX}CAMERAS__0__MAX_FPS=5`. Values are read as YAML scalars (`false`, `5`, `0.5`, text).
- **`serve`'s options override both**: {{flags}}; `--source URL` (with `--name NAME`) replaces the cameras.
"""


def _unwrap(annotation: Any) -> Any:
    """`Annotated[X, ...]` → X (pydantic keeps the constraints in the field's metadata)."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds directly or as list items, else None."""
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) is list:
        return _model_of(typing.get_args(annotation)[0])
    return None


def type_name(annotation: Any) -> str:
    """A field's type in words a YAML writer uses: `int`, `float or null`, `list of text`, `[int, int]`."""
    annotation = _unwrap(annotation)
    if annotation is type(None):
        return "null"
    if annotation is str:
        return "text"
    if isinstance(annotation, type) and issubclass(annotation, PurePath):
        return "path"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    if isinstance(annotation, type):
        return annotation.__name__
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(arg) for arg in args)
    if origin is list:
        return f"list of {type_name(args[0])}"
    if origin is tuple:
        return "[" + ", ".join(type_name(arg) for arg in args) + "]"
    if origin is dict:
        return f"mapping of {type_name(args[0])} to {type_name(args[1])}"
    return str(annotation)


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else f"{value:,}"


def limits(field: FieldInfo) -> str:
    """The field's constraints: `0 to 256`, `> 0`, `1 to 64 characters`, `at most 32 items`."""
    found: dict[str, Any] = {}
    inner = field.annotation
    extra = typing.get_args(inner)[1:] if typing.get_origin(inner) is typing.Annotated else ()
    for item in [*field.metadata, *extra]:  # annotated-types' Ge, Le, MaxLen, … and StringConstraints
        for name in ("ge", "gt", "le", "lt", "min_length", "max_length"):
            if getattr(item, name, None) is not None:
                found[name] = getattr(item, name)
    low_sign, low = ("≥", found["ge"]) if "ge" in found else (">", found.get("gt"))
    high_sign, high = ("≤", found["le"]) if "le" in found else ("<", found.get("lt"))
    length_min, length_max = found.get("min_length"), found.get("max_length")
    parts = []
    if low is not None and high is not None and low_sign == "≥" and high_sign == "≤":
        parts.append(f"{_number(low)} to {_number(high)}")
    else:
        if low is not None:
            parts.append(f"{low_sign} {_number(low)}")
        if high is not None:
            parts.append(f"{high_sign} {_number(high)}")
    unit = "items" if _is_list(field.annotation) else "characters"
    if length_min is not None and length_max is not None:
        parts.append(f"{length_min} to {length_max} {unit}")
    elif length_min is not None:
        parts.append(f"at least {length_min} {unit[:-1] if length_min == 1 else unit}")
    elif length_max is not None:
        parts.append(f"at most {length_max} {unit}")
    return ", ".join(parts)


def _is_list(annotation: Any) -> bool:
    annotation = _unwrap(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_is_list(arg) for arg in typing.get_args(annotation) if arg is not type(None))
    return typing.get_origin(annotation) is list


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def default_text(field: FieldInfo) -> str:
    """The default as YAML would hold it (JSON is YAML), or `required`."""
    if field.default_factory is not None:
        value = field.default_factory()
    elif field.is_required():
        return "required"
    else:
        value = field.default
    return "`" + json.dumps(_plain(value), ensure_ascii=False) + "`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _sections(model: type[BaseModel], path: str) -> Iterator[tuple[str, type[BaseModel]]]:
    """(path, model) of the model and of every model under it, depth first."""
    yield path, model
    for name, field in model.model_fields.items():
        inner = _model_of(field.annotation)
        if inner is not None:
            suffix = "[]" if _is_list(field.annotation) else ""
            yield from _sections(inner, f"{path}.{name}{suffix}" if path else f"{name}{suffix}")


def _anchor(path: str) -> str:
    return "".join(ch for ch in path.lower() if ch.isalnum() or ch in "-_")


def _table(model: type[BaseModel], path: str) -> list[str]:
    lines = ["| key | type | default | description |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        inner = _model_of(field.annotation)
        key = f"{path}.{name}" if path else name
        kind = type_name(field.annotation)
        bounds = limits(field)
        if bounds:
            kind = f"{kind} ({bounds})"
        description = field.description or ""
        if inner is not None:
            suffix = "[]" if _is_list(field.annotation) else ""
            target = f"{key}{suffix}"
            see = f"see [`{target}`](#{_anchor(target)})"
            description = f"{description}; {see}" if description else see
            default = "see below" if not _is_list(field.annotation) else default_text(field)
        else:
            default = default_text(field)
        lines.append(f"| `{key}` | {_cell(kind)} | {_cell(default)} | {_cell(description)} |")
    return lines


def undescribed(model: type[BaseModel] = ServiceConfig) -> list[str]:
    """Keys whose field has no description (the reference would show an empty cell for them)."""
    missing = []
    for path, section in _sections(model, ""):
        for name, field in section.model_fields.items():
            if not field.description and _model_of(field.annotation) is None:
                missing.append(f"{path}.{name}" if path else name)
    return missing


def reference_markdown(serve_flags: Mapping[str, str]) -> str:
    """docs/configuration.md: the introduction, then one table per section. `serve_flags` maps each config
    key that a `serve` option overrides to the option (`crowdstream.stream.cli.SERVE_FLAGS` gives them)."""
    flags = ", ".join(f"`{flag}` ({key})" for key, flag in serve_flags.items())
    lines = [INTRO.format(flags=flags)]
    for path, section in _sections(ServiceConfig, ""):
        title = path or "top level"
        lines.append(f"## {title}" if not path else f"## `{path}`")
        lines.append("")
        doc = section.__doc__ if section.__doc__ and section is not ServiceConfig else ""
        if doc and "__doc__" in vars(section):
            lines.extend([" ".join(doc.split()), ""])
        lines.extend(_table(section, path))
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"
