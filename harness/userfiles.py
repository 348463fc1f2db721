"""Files users write: timer profiles in YAML, parsed strictly at the boundary with pydantic.

A file's problems become one UsageError listing every one of them, a line each naming the file,
the field path, what is wrong and what is allowed, e.g.
``my.yaml: profiles.slow.dpd_delay: must be >= 0, got -1``.

    profiles:
      cautious:
        description: DPD every 10 s, strongSwan's retransmissions
        dpd_delay: 10
        retransmit_timeout: 4
        retransmit_base: 1.8
        retransmit_tries: 5

Owns: reading YAML and turning validation errors into lines, one per problem. Not: what a profile predicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, Tag, ValidationError
from pydantic_core import ErrorDetails

from harness.errors import UsageError
from harness.timers import JITTER_MAX, MILLISECOND, PROFILES, IkeVersion, Mode, Profile, Recovery, Unique

ProfileName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")]


def _default(field: str) -> Any:
    """The default of one of timers.Profile's fields: the file model and the dataclass never disagree."""
    return next(each.default for each in fields(Profile) if each.name == field)


class ProfileModel(BaseModel):
    """One profile; omitted timers take timers.Profile's defaults (strongSwan's documented ones,
    DPD 30 s)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    description: str = ""
    retransmit_timeout: float = Field(_default("retransmit_timeout"), ge=MILLISECOND, le=3600)
    retransmit_base: float = Field(_default("retransmit_base"), ge=1, le=10)
    retransmit_tries: int = Field(_default("retransmit_tries"), ge=0, le=30)
    retransmit_jitter: int = Field(_default("retransmit_jitter"), ge=0, le=JITTER_MAX)
    retransmit_limit: int = Field(_default("retransmit_limit"), ge=0, le=86400)
    dpd_delay: int = Field(_default("dpd_delay"), ge=0, le=86400)
    ike_version: IkeVersion = Field(_default("ike_version"))
    dpd_timeout: int = Field(_default("dpd_timeout"), ge=0, le=86400)
    unique: Unique = Field(_default("unique"))
    recovery: Recovery = Field(_default("recovery"))
    mode: Mode | None = Field(_default("mode"))
    make_before_break: bool = Field(_default("make_before_break"))
    encap: bool = Field(_default("encap"))

    def to_profile(self, name: str, source: Path) -> Profile:
        values = self.model_dump(exclude={"description", "name"})
        return Profile(name, self.description or f"from {source.name}", **values)


def _not_built_in(name: str) -> str:
    if name in PROFILES:
        raise ValueError("is a built-in profile; choose another name")
    return name


class ProfilesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    profiles: dict[Annotated[ProfileName, AfterValidator(_not_built_in)], ProfileModel] = Field(min_length=1)


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
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "string_type": "must be text",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "too_short": "must not be empty",
    "string_too_short": "must not be empty",
    "string_pattern_mismatch": "must match {pattern}",
}


CHARON_FORMS = {
    "retransmit_jitter": "charon takes whole percent, at most 20",
    "retransmit_limit": "charon reads whole seconds",
    "retransmit_tries": "charon reads a whole number",
    "dpd_delay": "charon reads whole seconds",
    "dpd_timeout": "charon reads whole seconds",
}
"""Why a field must be what it must be: charon silently reads anything else as its default."""

KEY = "[key]"
"""The location part pydantic adds after a mapping key that is itself wrong."""


def error_lines(path: Path, error: ValidationError, model: type[BaseModel]) -> list[str]:
    """Every validation problem, one line each (``file: field: message``), unknown keys (usually
    typos) first, then in the file's order."""
    problems = sorted(error.errors(), key=lambda problem: problem["type"] != "extra_forbidden")
    lines: list[str] = []
    for problem in problems:
        line = f"{path}: {_problem_line(problem, model)}"
        if line not in lines:
            lines.append(line)
    return lines


def _problem_line(problem: ErrorDetails, model: type[BaseModel]) -> str:
    """One problem as ``field: message``, the field as the user wrote it (pydantic's union labels
    left out)."""
    place = _walk(model, problem["loc"])
    kind = problem["type"]
    context = problem.get("ctx", {})
    given = problem.get("input")
    parts = list(place.parts)
    if kind == "extra_forbidden":
        scope = f" for {place.tag[0]} {place.tag[1]}{_taken_by(place, parts[-1])}" if place.tag else ""
        message = f"unknown key{scope}; allowed are {', '.join(place.model.model_fields)}"
    elif kind in ("union_tag_invalid", "union_tag_not_found") and isinstance(given, dict):
        discriminator = str(context.get("discriminator", "")).strip("'")
        parts.append(discriminator)
        if kind == "union_tag_not_found":
            message = "is required"
        else:
            expected = str(context.get("expected_tags", "")).replace("'", "")
            message = f"{given.get(discriminator)!r} is not one of {expected}"
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        message = f"must be a mapping, got {given!r}"
    elif kind == "missing":
        message = "is required"
    elif kind == "literal_error":
        expected = str(context.get("expected", "")).replace("'", "")
        message = f"{given!r} is not one of {expected.replace(' or ', ', ')}"
        if isinstance(given, bool):
            message += " (quote it: YAML reads an unquoted no or yes as a boolean)"
    elif kind == "value_error":
        message = str(context.get("error", problem["msg"]))
    else:
        template = MESSAGES.get(kind)
        message = template.format(**context) if template else problem["msg"]
        message = f"{'name ' if place.naming else ''}{message}, got {given!r}"
        field = problem["loc"][-1] if problem["loc"] else None
        if field in CHARON_FORMS and kind in ("int_type", "int_from_float", "less_than_equal"):
            message += f" ({CHARON_FORMS[field]})"
    return f"{_location(parts)}: {message}"


def _location(parts: Sequence[str | int]) -> str:
    """``profiles[1].dpd_delay``: names joined with dots, indexes and keys that would not read
    as a name in brackets."""
    location = ""
    for part in parts:
        if isinstance(part, int) or not str(part).replace("-", "_").replace(":", "_").isidentifier():
            location += f"[{part!r}]"
        else:
            location += f".{part}" if location else str(part)
    return location or "(top level)"


@dataclass
class _Place:
    """Where a problem is: the parts a user wrote, the model whose keys the last part is among,
    the discriminating field and its value when a union chose the model by it (fault kind crash),
    and whether the problem is with a mapping's key rather than its value."""

    parts: list[str | int]
    model: type[BaseModel]
    tag: tuple[str, str] | None = None
    union: Any = None
    """The union the tag chose from."""
    naming: bool = False


def _walk(model: type[BaseModel], location: tuple[str | int, ...]) -> _Place:
    """Follow a pydantic error location through the model's annotations: field names, list
    indexes and mapping keys are the user's; the labels pydantic adds for unions are not, but say
    which member (and so which keys) applied."""
    place = _Place([], model)
    current: Any = model
    for part in location:
        if part == KEY:
            place.naming = True
            continue
        current = _unwrapped(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            place.model = current
            place.parts.append(part)
            field = current.model_fields.get(part) if isinstance(part, str) else None
            current = field.annotation if field is not None else None
        elif get_origin(current) in (list, dict):
            place.parts.append(part)
            current = get_args(current)[-1]
        elif _members(current):
            current = _member(current, str(part), place)
        else:
            current = None  # a label inside a scalar union: nothing to name
    return place


def _unwrapped(annotation: Any) -> Any:
    """The annotation without Annotated's metadata and without None (an optional value)."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    members = [member for member in _members(annotation) if member is not type(None)]
    return _unwrapped(members[0]) if _members(annotation) and len(members) == 1 else annotation


def _members(annotation: Any) -> tuple[Any, ...]:
    return get_args(annotation) if get_origin(annotation) in (Union, UnionType) else ()


def _member(union: Any, label: str, place: _Place) -> Any:
    """The member of ``union`` that pydantic's ``label`` names: by its Tag, by a Literal field
    holding the label (a discriminator like ``kind``, recorded in ``place.tag``), or by class name."""
    for member in _members(union):
        tags = [meta.tag for meta in getattr(member, "__metadata__", ()) if isinstance(meta, Tag)]
        inner = _unwrapped(member)
        if label in tags or getattr(inner, "__name__", None) == label:
            return inner
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            for name, field in inner.model_fields.items():
                if get_origin(field.annotation) is Literal and label in get_args(field.annotation):
                    place.tag, place.union = (name, label), union
                    return inner
    return None


def _taken_by(place: _Place, key: str | int) -> str:
    """`` (only kind freeze takes it)``: which other members of the tag's union take ``key``."""
    assert place.tag is not None
    discriminator = place.tag[0]
    values = [
        str(value)
        for member in _members(place.union)
        if isinstance(inner := _unwrapped(member), type) and issubclass(inner, BaseModel) and key in inner.model_fields
        for value in get_args(inner.model_fields[discriminator].annotation)
    ]
    if not values:
        return ""
    named = values[0] if len(values) == 1 else f"{', '.join(values[:-1])} and {values[-1]}"
    return f" (only {discriminator} {named} {'takes' if len(values) == 1 else 'take'} it)"


Model = TypeVar("Model", bound=BaseModel)


def parse(path: Path, model: type[Model], needs: str) -> Model:
    """A YAML file validated against ``model``; a UsageError lists every problem, one line each.
    ``needs`` says what an empty file lacks."""
    data = read_yaml(path)
    if data is None:
        raise UsageError(f"{path}: the file is empty; {needs}")
    return validate(path, data, model)


def validate(path: Path, data: Any, model: type[Model]) -> Model:
    """``data`` (read from ``path``) validated against ``model``; a UsageError lists every problem."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise UsageError("\n".join(error_lines(path, error, model))) from None


def load_profiles(path: Path) -> dict[str, Profile]:
    """User profiles from a YAML file; names must not shadow the built-in ones."""
    parsed = parse(path, ProfilesFile, "it needs a 'profiles' mapping")
    return {name: model.to_profile(name, path) for name, model in parsed.profiles.items()}
