"""README's "The JSON result" against the record, field by field: every field a result has is
documented there, and every field documented there exists, at every level (a field is a list
item that starts with its `name` and a colon; an indented item is a field of the one above; a
`<placeholder>` stands for the keys of a map keyed by data, like `services.<service>`).

The record is the one `demo` and `run --fault` write (result.to_json plus what the CLI adds),
from a synthetic outcome whose every map is filled the way a lab run fills it, with fe's
effective settings read back through harness.effective from a fake fe."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from harness import effective, lab, measure, policy, result, runs, timers, wire
from harness.measure import Outcome
from harness.policy import DC_PEERS, DC_PORTS
from harness.topology import NODES

from .fakes import fake_lab
from .outcomes import synthetic_outcome

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "### The JSON result"
ITEM = re.compile(r"^(?P<indent> *)[*-] (?P<text>.*)$")
FIELD = re.compile(r"^`(?P<name>[^`]+)`:")
Path_ = tuple[str, ...]


def section(text: str) -> list[str]:
    """The lines of README's JSON section, up to the next heading."""
    lines = text.splitlines()
    start = lines.index(SECTION) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("#")), len(lines))
    return lines[start:end]


def documented(lines: list[str]) -> set[Path_]:
    """Every field path the section's lists name, e.g. ("services", "<service>", "outage_s")."""
    paths: set[Path_] = set()
    stack: list[tuple[int, Path_]] = []
    for line in lines:
        item = ITEM.match(line)
        if item is None:
            continue
        field = FIELD.match(item["text"])
        assert field is not None, f"a list item of {SECTION!r} that does not start with `field`: {line!r}"
        indent = len(item["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = (*(stack[-1][1] if stack else ()), field["name"])
        assert path not in paths, f"documented twice: {'.'.join(path)}"
        paths.add(path)
        stack.append((indent, path))
    return paths


def fields(value: Any, docs: set[Path_], prefix: Path_ = ()) -> set[Path_]:
    """Every field path of ``value``: the keys of its objects, of the objects in its lists, and of
    maps keyed by data under the placeholder the documentation gives them."""
    if isinstance(value, list):
        return {path for element in value for path in fields(element, docs, prefix)}
    if not isinstance(value, dict):
        return set()
    placeholders = {p[-1] for p in docs if p[:-1] == prefix and len(p) == len(prefix) + 1 and p[-1].startswith("<")}
    if placeholders:
        assert value, f"{'.'.join(prefix)}: fill this map in the test record, or its entries go unchecked"
        (key,) = placeholders
        items = [((*prefix, key), item) for item in value.values()]
    else:
        items = [((*prefix, name), item) for name, item in value.items()]
    return {path for path, _ in items} | {found for path, item in items for found in fields(item, docs, path)}


def full_outcome() -> Outcome:
    """A synthetic crash whose maps are all filled as a lab run fills them (every node, port,
    credential and CHILD_SA name), fe's effective settings read back from a fake fe."""
    fake = fake_lab()
    return dataclasses.replace(
        synthetic_outcome(5.0),
        vip_moved=1.0,
        effective=effective.read(fake.lab.fe, "5.9.8"),
        guard_drops=dict.fromkeys(NODES, 0),
        clear_by_port=wire.clear_by_port([], fake.topology),
        credentials_in_clear=dict.fromkeys(wire.CREDENTIALS, 0),
        esp_by_child={"all": 270},
        esp_packets=2474,
        coverage={node: {f"{proto}/{port}": True for proto, port in DC_PORTS} for node in DC_PEERS},
    )


def as_the_cli_writes_it(outcome: Outcome, monkeypatch: pytest.MonkeyPatch) -> result.Result:
    """The record `demo` and `run --fault` write for ``outcome`` (cli.measure_runs on a fake lab)."""
    fake = fake_lab()

    @contextlib.contextmanager
    def running(*args: object, **kwargs: object) -> Iterator[lab.Lab]:
        yield fake.lab

    monkeypatch.setattr(lab, "running", running)
    monkeypatch.setattr(measure, "run", lambda *args, **kwargs: outcome)
    monkeypatch.setattr(runs, "console", Console(file=io.StringIO(), width=200))
    plan = [(timers.profile("fast"), outcome.fault, policy.DEFAULT)]
    (record,) = runs.measure_runs(plan, timers.FaultParams(), 1, "netns")
    return record


@pytest.fixture
def docs() -> set[Path_]:
    return documented(section(README.read_text()))


def test_every_field_of_the_record_is_documented_and_every_documented_field_exists(
    docs: set[Path_], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash's record, a freeze's, a takeover-announce's, a reauth's and a graceful move's: each
    fault records only its own parameters."""
    crash = as_the_cli_writes_it(full_outcome(), monkeypatch)
    freeze = as_the_cli_writes_it(dataclasses.replace(full_outcome(), fault="freeze"), monkeypatch)
    takeover = as_the_cli_writes_it(dataclasses.replace(full_outcome(), fault="takeover-announce"), monkeypatch)
    reauth = as_the_cli_writes_it(dataclasses.replace(full_outcome(), fault="reauth"), monkeypatch)
    graceful = as_the_cli_writes_it(dataclasses.replace(full_outcome(), fault="graceful"), monkeypatch)
    found = set().union(*(fields(record, docs) for record in (crash, freeze, takeover, reauth, graceful)))
    undocumented = sorted(".".join(path) for path in found - docs)
    missing = sorted(".".join(path) for path in docs - found)
    assert (undocumented, missing) == ([], []), "README's JSON section and the record disagree"


def test_run_wall_s_is_the_only_field_the_cli_adds(monkeypatch: pytest.MonkeyPatch) -> None:
    """README says `run_wall_s` is only in the results of demo and run --fault: to_json (what a
    scenario file's runs and the pytest plugin save) does not have it."""
    outcome = full_outcome()
    added = set(as_the_cli_writes_it(outcome, monkeypatch)) - set(result.to_json(outcome))
    assert added == {"run_wall_s"}


def test_every_required_key_is_documented(docs: set[Path_]) -> None:
    assert {(key,) for key in result.REQUIRED_KEYS} <= docs


def test_the_parser_sees_nesting_and_refuses_an_item_that_names_no_field() -> None:
    lines = ["* `a`: one", "  text that continues it", "  * `<k>`: keyed", "    * `b`: deep", "* `c`: top"]
    assert documented(lines) == {("a",), ("a", "<k>"), ("a", "<k>", "b"), ("c",)}
    with pytest.raises(AssertionError, match="does not start with `field`"):
        documented(["* a field without backticks: x"])
    assert fields({"a": {"x": {"b": 1}, "y": {"b": 2}}, "c": [{"d": 1}]}, {("a", "<k>")}) == {
        ("a",),
        ("a", "<k>"),
        ("a", "<k>", "b"),
        ("c",),
        ("c", "d"),
    }
