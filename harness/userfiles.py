"""Files users write: timer profiles in YAML, parsed strictly at the boundary with pydantic.

Every problem becomes one UsageError line naming the file, the field path, what is wrong and
what is allowed, e.g. ``my.yaml: profiles.slow.dpd_delay: must be >= 0, got -1``.

    profiles:
      cautious:
        description: DPD every 10 s, strongSwan's retransmissions
        dpd_delay: 10
        retransmit_timeout: 4
        retransmit_base: 1.8
        retransmit_tries: 5

Owns: reading YAML and turning validation errors into one line. Not: what a profile predicts.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from harness.errors import UsageError
from harness.timers import JITTER_MAX, PROFILES, Profile, Unique

ProfileName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")]


def _default(field: str) -> Any:
    """The default of one of timers.Profile's fields: the file model and the dataclass never disagree."""
    return next(each.default for each in fields(Profile) if each.name == field)


class ProfileModel(BaseModel):
    """One profile; omitted timers take timers.Profile's defaults (strongSwan's documented ones,
    DPD 30 s)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    description: str = ""
    retransmit_timeout: float = Field(_default("retransmit_timeout"), gt=0, le=3600)
    retransmit_base: float = Field(_default("retransmit_base"), ge=1, le=10)
    retransmit_tries: int = Field(_default("retransmit_tries"), ge=0, le=30)
    retransmit_jitter: int = Field(_default("retransmit_jitter"), ge=0, le=JITTER_MAX)
    retransmit_limit: int = Field(_default("retransmit_limit"), ge=0, le=86400)
    dpd_delay: int = Field(_default("dpd_delay"), ge=0, le=86400)
    unique: Unique = Field(_default("unique"))

    def to_profile(self, name: str, source: Path) -> Profile:
        values = self.model_dump(exclude={"description", "name"})
        return Profile(name, self.description or f"from {source.name}", **values)


class ProfilesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    profiles: dict[ProfileName, ProfileModel] = Field(min_length=1)


def read_yaml(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as error:
        raise UsageError(f"{path}: cannot read it: {error.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or "cannot be parsed"
        raise UsageError(f"{path}: not valid YAML{where}: {problem}") from None


MESSAGES = {
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "int_type": "must be a whole number",
    "float_type": "must be a number",
    "string_type": "must be text",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "too_short": "must not be empty",
    "string_pattern_mismatch": "must match {pattern}",
}


CHARON_FORMS = {
    "retransmit_jitter": "charon takes whole percent, at most 20",
    "retransmit_limit": "charon reads whole seconds",
    "retransmit_tries": "charon reads a whole number",
    "dpd_delay": "charon reads whole seconds",
}
"""Why a field must be what it must be: charon silently reads anything else as its default."""

TAGS = {"named", "inline", "[key]"}
"""Location parts pydantic adds for unions and mapping keys; not fields a user wrote."""


def error_line(path: Path, error: ValidationError, model: type[BaseModel]) -> str:
    """The first validation problem as one line (with how many more there are); unknown keys
    (usually typos) are reported before anything else."""
    problems = sorted(error.errors(), key=lambda problem: problem["type"] != "extra_forbidden")
    first = problems[0]
    naming = "[key]" in first["loc"]
    location = ""
    for part in first["loc"]:
        if part in TAGS:
            continue
        if isinstance(part, int) or not str(part).replace("-", "_").replace(":", "_").isidentifier():
            location += f"[{part!r}]"  # an index, or a key that would not read as a name
        else:
            location += f".{part}" if location else str(part)
    location = location or "(top level)"
    kind = first["type"]
    context = first.get("ctx", {})
    if kind == "extra_forbidden":
        allowed = ", ".join(_fields_at(model, first["loc"][:-1]))
        message = f"unknown key; allowed are {allowed}"
    elif kind == "missing":
        message = "is required"
    elif kind == "literal_error":
        expected = str(context.get("expected", "")).replace("'", "")
        message = f"{first.get('input')!r} is not one of {expected.replace(' or ', ', ')}"
        if isinstance(first.get("input"), bool):
            message += " (quote it: YAML reads an unquoted no or yes as a boolean)"
    elif kind == "value_error":
        message = str(context.get("error", first["msg"]))
    else:
        template = MESSAGES.get(kind)
        message = template.format(**context) if template else first["msg"]
        message = f"{'name ' if naming else ''}{message}, got {first.get('input')!r}"
        field = first["loc"][-1] if first["loc"] else None
        if field in CHARON_FORMS and kind in ("int_type", "int_from_float", "less_than_equal"):
            message += f" ({CHARON_FORMS[field]})"
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    return f"{path}: {location}: {message}{more}"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (through unions, lists, dicts, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for argument in getattr(annotation, "__args__", ()) for model in _models_in(argument)]


def _fields_at(model: type[BaseModel], location: tuple[Any, ...]) -> list[str]:
    """Field names of the model reached by following ``location`` (indexes and keys skipped)."""
    for part in location:
        if isinstance(part, str) and part in model.model_fields:
            found = _models_in(model.model_fields[part].annotation)
            if found:
                model = found[0]
    return list(model.model_fields)


Model = TypeVar("Model", bound=BaseModel)


def parse(path: Path, model: type[Model], needs: str) -> Model:
    """A YAML file validated against ``model``; every problem is one UsageError line. ``needs``
    says what an empty file lacks."""
    data = read_yaml(path)
    if data is None:
        raise UsageError(f"{path}: the file is empty; {needs}")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise UsageError(error_line(path, error, model)) from None


def load_profiles(path: Path) -> dict[str, Profile]:
    """User profiles from a YAML file; names must not shadow the built-in ones."""
    parsed = parse(path, ProfilesFile, "it needs a 'profiles' mapping")
    profiles = {}
    for name, model in parsed.profiles.items():
        if name in PROFILES:
            raise UsageError(f"{path}: profiles.{name}: is a built-in profile; choose another name")
        profiles[name] = model.to_profile(name, path)
    return profiles
