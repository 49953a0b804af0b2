"""What an OpenAI-compatible endpoint accepts, known instead of assumed.

Servers that speak Chat Completions differ: some refuse `response_format: json_schema`,
some ignore `tools` unless `tool_choice` is given, some honour only `max_tokens`. For each
feature Baton knows one of three things — supported, not supported, or not yet known:

1. what a person configured (`openai_compat:` in the catalog, `OPENAI_COMPAT` in the
   environment, which wins key by key), or a preset they named;
2. else a preset for the endpoint: OpenAI itself, or a server recognised by its
   `/models` answer (probed once);
3. else what Baton learns: a feature the server refuses (an HTTP error that names it, or a
   validation error) is marked unsupported and the request is sent again without it, once
   per feature and process. Configured values are never overruled by learning.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.errors import CompatError


class Feature(StrEnum):
    JSON_SCHEMA = "json_schema"  # response_format {"type": "json_schema"}
    JSON_OBJECT = "json_object"  # response_format {"type": "json_object"}
    # llama-cpp-python's extension {"type": "json_object", "schema": …}: the server holds the
    # answer to the schema (fast, where its generic JSON grammar is very slow). Only sent
    # where known to work.
    JSON_OBJECT_SCHEMA = "json_object_schema"
    TOOL_CHOICE = "tool_choice"  # honours tool_choice (a named function, at least)
    # tool_choice "auto" works and keeps to max_tokens (llama-cpp-python's ignores it).
    TOOL_CHOICE_AUTO = "tool_choice_auto"
    TOOL_CHOICE_REQUIRED = "tool_choice_required"  # tool_choice "required"
    # Tool results (role "tool") reach the model (llama-cpp-python's chat formats drop them).
    TOOL_RESULTS = "tool_results"
    PARALLEL_TOOL_CALLS = "parallel_tool_calls"  # several tool calls in one turn
    MAX_COMPLETION_TOKENS = "max_completion_tokens"  # honours it (else max_tokens is sent)
    STREAM_USAGE = "stream_usage"  # stream_options.include_usage gives a usage chunk


class Capabilities(BaseModel):
    """True: supported. False: not. None: not known yet."""

    model_config = ConfigDict(extra="forbid")

    json_schema: bool | None = None
    json_object: bool | None = None
    json_object_schema: bool | None = None
    tool_choice: bool | None = None
    tool_choice_auto: bool | None = None
    tool_choice_required: bool | None = None
    tool_results: bool | None = None
    parallel_tool_calls: bool | None = None
    max_completion_tokens: bool | None = None
    stream_usage: bool | None = None

    def get(self, feature: Feature) -> bool | None:
        """What is known about `feature`."""
        value: bool | None = getattr(self, feature.value)
        return value

    def under(self, base: Capabilities) -> Capabilities:
        """These values where known, `base`'s elsewhere."""
        return Capabilities(
            **{f.value: self.get(f) if self.get(f) is not None else base.get(f) for f in Feature}
        )


Preset = Literal["openai", "llama-cpp-python"]

PRESETS: dict[str, Capabilities] = {
    "openai": Capabilities(
        **{f.value: True for f in Feature if f != Feature.JSON_OBJECT_SCHEMA},
        json_object_schema=False,
    ),
    # llama-cpp-python's server (0.3.x) with --chat_format chatml-function-calling.
    "llama-cpp-python": Capabilities(
        json_schema=False,
        json_object=True,
        json_object_schema=True,
        tool_choice=True,
        tool_choice_auto=False,
        tool_choice_required=False,
        tool_results=False,
        parallel_tool_calls=True,
        max_completion_tokens=False,
        stream_usage=False,
    ),
}

# How a server answers GET /models, as far as it tells who it is.
_OWNED_BY: dict[str, Preset] = {"me": "llama-cpp-python"}


def preset_for_models(owned_by: list[str]) -> Preset | None:
    """The preset of a server recognised by the `owned_by` of its models, if any."""
    return next((_OWNED_BY[o] for o in owned_by if o in _OWNED_BY), None)


class CompatSettings(Capabilities):
    """What a person writes under `openai_compat:` (or in OPENAI_COMPAT)."""

    preset: Preset | None = None
    # A ceiling on every answer's length, for slow local models.
    max_output_tokens: int | None = Field(default=None, ge=1)
    # Sent with every request when set; 0 makes small local models repeatable.
    temperature: float | None = Field(default=None, ge=0, le=2)

    def capabilities(self) -> Capabilities:
        """Configured values, over the named preset's."""
        own = Capabilities(**{f.value: self.get(f) for f in Feature})
        return own.under(PRESETS[self.preset]) if self.preset else own

    def over(self, base: CompatSettings) -> CompatSettings:
        """These settings where given, `base`'s elsewhere."""
        given = self.model_dump(exclude_unset=True)
        return CompatSettings(**{**base.model_dump(exclude_unset=True), **given})


def parse_compat(text: str) -> CompatSettings:
    """`llama-cpp-python,json_schema=false,max_output_tokens=64` to settings; CompatError if wrong."""
    values: dict[str, object] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, eq, raw = item.partition("=")
        key = key.strip()
        if not eq:
            values["preset"] = key
            continue
        value = raw.strip().lower()
        if key in ("max_output_tokens", "temperature"):
            values[key] = value
        elif value in ("true", "yes", "1", "on"):
            values[key] = True
        elif value in ("false", "no", "0", "off"):
            values[key] = False
        elif value in ("auto", "unknown", ""):
            values[key] = None
        else:
            raise CompatError(f"'{item}': use true, false or auto")
    try:
        return CompatSettings.model_validate(values)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or 'value'}: {err['msg']}" for err in e.errors()
        )
        raise CompatError(
            f"{problems} (known: preset names {', '.join(PRESETS)}; "
            f"{', '.join(f.value for f in Feature)}, max_output_tokens, temperature)"
        ) from e


class CapabilityMemory:
    """Per model on one endpoint: what is configured, preset, and learned so far."""

    def __init__(self, configured: Capabilities, *, preset: Capabilities | None = None) -> None:
        self.configured = configured
        self.preset = preset or Capabilities()
        self._learned: dict[str, dict[Feature, bool]] = {}

    def recognise(self, preset: Capabilities) -> None:
        """A preset found by probing the server; configured values still win."""
        self.preset = preset

    def of(self, model: str) -> Capabilities:
        """What is known for `model`: configured, then the preset, then what was learned."""
        learned = Capabilities(**{f.value: v for f, v in self._learned.get(model, {}).items()})
        return self.configured.under(self.preset).under(learned)

    def is_configured(self, feature: Feature) -> bool:
        """A person said so: learning never overrules it."""
        return self.configured.get(feature) is not None

    def learn(self, model: str, feature: Feature, supported: bool) -> None:
        """Remember what a server's answer showed, for this model, in this process."""
        self._learned.setdefault(model, {})[feature] = supported
