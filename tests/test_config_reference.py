"""docs/configuration.md is what `crowdstream config reference` writes from the configuration's models."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from crowdstream.stream.cli import config_reference
from crowdstream.stream.config import ServiceConfig
from crowdstream.stream.config_reference import GENERATED_BY, default_text, limits, type_name, undescribed
from tests.conftest import run_cli

REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_docs_configuration_md_is_the_generated_reference() -> None:
    written = REFERENCE.read_text(encoding="utf-8")
    assert written == config_reference(), (
        f"docs/configuration.md is out of date with the configuration's models: run `{GENERATED_BY}`"
    )


def test_every_key_of_every_section_is_in_the_reference() -> None:
    text = config_reference()
    sections = {
        "": ServiceConfig,
        "engine.": ServiceConfig.model_fields["engine"].annotation,
        "http.": ServiceConfig.model_fields["http"].annotation,
        "finetune.": ServiceConfig.model_fields["finetune"].annotation,
        "decode.": ServiceConfig.model_fields["decode"].annotation,
    }
    for prefix, model in sections.items():
        for name in model.model_fields:
            assert f"| `{prefix}{name}` |" in text, f"{prefix}{name} missing from the reference"
    assert "| `cameras[].zones[].area_m2` |" in text
    assert "| `http.ice_servers[].urls` |" in text


def test_every_key_has_a_description() -> None:
    assert undescribed() == [], "add description= to these fields: the reference shows it"


def test_rows_carry_type_limits_and_default() -> None:
    text = config_reference()
    assert "| `engine.threads` | int (0 to 256) | `0` | CPU threads for inference (0: all cores) |" in text
    assert "| `cameras[].max_fps` | float or null (> 0, ≤ 120) | `2.0` |" in text
    assert "| `http.token` | text or null (at least 16 characters) | `null` |" in text
    assert "| `cameras[].url` | text (at least 1 character) | required |" in text
    assert "`--port` (http.port)" in text


def test_type_limits_and_default_of_a_small_model() -> None:
    class Example(BaseModel):
        size: tuple[int, int] | None = Field(None, description="d")
        names: list[str] = Field(default_factory=lambda: ["a|b"], max_length=3)
        ratio: float = Field(0.5, gt=0, lt=1)
        count: int = Field(2000, ge=1, le=10_000)
        label: str = Field(min_length=2, max_length=8)

    fields = Example.model_fields
    assert type_name(fields["size"].annotation) == "[int, int] or null"
    assert type_name(fields["names"].annotation) == "list of text"
    assert limits(fields["names"]) == "at most 3 items"
    assert limits(fields["ratio"]) == "> 0, < 1"
    assert limits(fields["count"]) == "1 to 10,000"
    assert limits(fields["label"]) == "2 to 8 characters"
    assert default_text(fields["names"]) == '`["a|b"]`'
    assert default_text(fields["count"]) == "`2000`"
    assert default_text(fields["label"]) == "required"


def test_config_reference_command_prints_it() -> None:
    result = run_cli("config", "reference")
    assert result.returncode == 0, result.stderr
    assert result.stdout == config_reference()
