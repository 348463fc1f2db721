"""Scenario files: a fault, the profiles to try it with, how often, and what must hold.

    # scenarios/crash.yaml
    description: A crash of the active back-end, found by DPD
    profiles: [fast, {name: cautious, dpd_delay: 5, retransmit_timeout: 1, retransmit_base: 1}]
    time_scale: 1            # or 1/30: every timer (and the cluster's) multiplied
    backend: netns           # optional: otherwise the command line's choice
    policy: mail-passwords   # what IPsec protects (default all-traffic)
    fault: {kind: crash, cluster_delay: 1.0}
    repeat: 1
    expect:
      outage_max_s: 6.5      # overall outage at most (actual seconds)
      within_prediction: true
      recovered_on: be2
      plaintext_packets: 0
      services: {pop3: {outage_max_s: 6.5}}

Parsed strictly (unknown keys rejected); every error is one line naming the file and the field.
`failover-lab run FILE` and `pytest scenarios/` (harness.pytest_plugin) run them the same way.

Owns: the scenario models, loading (meaning included: the timer model must accept every profile
for the fault, checked before any lab exists), running and judging. Not: measuring
(harness.measure), the model's own checks (harness.timers.check).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
)

from harness import lab, measure, timers
from harness.backends import AUTO
from harness.errors import UsageError
from harness.measure import Outcome
from harness.userfiles import ProfileModel, ProfileName, parse

FaultKind = Literal["graceful", "graceful-noblock", "crash", "freeze", "link-cut", "reboot", "reboot-announce"]
Service = Literal["udp", "http", "pop3", "imap"]
Backend = Literal["auto", "netns", "docker", "docker:bookworm"]
PolicyName = Literal["none", "mail-passwords", "mail-all", "all-traffic"]


def _known_profile(name: str) -> str:
    if name not in timers.PROFILES:
        raise ValueError(f"{name!r} is not one of {', '.join(timers.PROFILES)}")
    return name


class InlineProfile(ProfileModel):
    """A profile written into the scenario."""

    name: ProfileName


NamedProfile = Annotated[str, AfterValidator(_known_profile)]
ProfileEntry = Annotated[
    Annotated[NamedProfile, Tag("named")] | Annotated[InlineProfile, Tag("inline")],
    Discriminator(lambda value: "named" if isinstance(value, str) else "inline"),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class FaultModel(Strict):
    kind: FaultKind
    cluster_delay: float = Field(timers.FaultParams.cluster_delay, ge=0, le=3600)
    freeze: float = Field(timers.FaultParams.freeze, gt=0, le=3600)


class ServiceExpectations(Strict):
    outage_max_s: float = Field(gt=0)


class Expectations(Strict):
    outage_max_s: float | None = Field(None, gt=0)
    within_prediction: bool = True
    recovered_on: Literal["be1", "be2"] | None = None
    plaintext_packets: int | None = Field(0, ge=0)
    services: dict[Service, ServiceExpectations] = Field(default_factory=dict)


class ScenarioModel(Strict):
    description: str = ""
    backend: Backend | None = None
    policy: PolicyName = "all-traffic"
    time_scale: Annotated[str | float, AfterValidator(timers.parse_scale)] = 1.0
    profiles: list[ProfileEntry] = Field(min_length=1)
    fault: FaultModel
    repeat: int = Field(1, ge=1, le=100)
    expect: Expectations = Expectations()


@dataclass(frozen=True)
class Scenario:
    """A loaded scenario: profiles resolved (and scaled), ready to run."""

    name: str
    path: Path
    model: ScenarioModel

    @property
    def profiles(self) -> list[timers.Profile]:
        resolved = []
        for entry in self.model.profiles:
            profile = timers.profile(entry) if isinstance(entry, str) else entry.to_profile(entry.name, self.path)
            resolved.append(profile.scaled(float(self.model.time_scale)))
        return resolved

    @property
    def params(self) -> timers.FaultParams:
        fault = self.model.fault
        return timers.FaultParams(fault.cluster_delay, fault.freeze).scaled(float(self.model.time_scale))

    def item_name(self, profile: timers.Profile) -> str:
        return f"{self.name}[{profile.name}]"


def load(path: Path) -> Scenario:
    """A scenario file parsed strictly, then checked for meaning: no profile twice, and the timer
    model accepts every profile for the fault. Any problem is one UsageError line; no lab exists yet."""
    model = parse(path, ScenarioModel, "a scenario needs at least 'profiles' and 'fault'")
    loaded = Scenario(path.stem, path, model)
    _refuse_duplicates(loaded)
    _refuse_what_the_model_refuses(loaded)
    return loaded


def _refuse_duplicates(scenario: Scenario) -> None:
    names = [p.name for p in scenario.profiles]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise UsageError(f"{scenario.path}: profiles: {', '.join(duplicates)} appears more than once")


def _refuse_what_the_model_refuses(scenario: Scenario) -> None:
    for index, profile in enumerate(scenario.profiles):
        try:
            timers.check(profile, scenario.model.fault.kind, scenario.params)
        except UsageError as error:
            raise UsageError(f"{scenario.path}: profiles[{index}] ({profile.name}): {error}") from None


def schema() -> dict[str, Any]:
    """JSON schema of scenario files, for editors (scenarios/scenario.schema.json)."""
    generated: dict[str, Any] = ScenarioModel.model_json_schema()
    generated["title"] = "failover-lab scenario"
    return generated


def schema_text() -> str:
    return json.dumps(schema(), indent=2, sort_keys=True) + "\n"


def run(
    scenario: Scenario,
    profile: timers.Profile,
    backend_name: str = AUTO,
    report: measure.Reporter | None = None,
) -> list[Outcome]:
    """The scenario's fault ``repeat`` times with one of its profiles, each on a fresh lab; the
    scenario's own backend wins over ``backend_name``."""
    outcomes = []
    for _ in range(scenario.model.repeat):
        backend_choice = scenario.model.backend or backend_name
        with lab.running(profile, backend_choice, policy_name=scenario.model.policy) as running:
            outcomes.append(measure.run(running, scenario.model.fault.kind, scenario.params, report))
    return outcomes


def judge(scenario: Scenario, outcome: Outcome) -> list[str]:
    """One sentence per expectation the outcome does not meet (empty: all met)."""
    expect = scenario.model.expect
    name = scenario.item_name(outcome.profile)
    where = f"{outcome.backend}, strongSwan {outcome.strongswan_version}"
    band = _band(outcome.predicted)
    outage = outcome.outage_s
    if outage is None:
        silent = ", ".join(s for s, o in outcome.outages.items() if o.seconds is None)
        return [f"{name}: {silent} never answered again after the {outcome.fault} ({band}; {where})"]
    problems = []
    if expect.outage_max_s is not None and outage > expect.outage_max_s:
        problems.append(
            f"{name}: outage {outage:.3f} s is more than the expected {expect.outage_max_s:.3f} s ({band}; {where})"
        )
    if expect.within_prediction and not outcome.within_prediction:
        outside = [
            f"{service} {o.seconds:.3f} s outside the {_band(outcome.predicted_for(o))}"
            for service, o in outcome.outages.items()
            if o.seconds not in outcome.predicted_for(o)
        ]
        problems.append(f"{name}: {', '.join(outside)} ({where})")
    if expect.recovered_on is not None and outcome.new_owner != expect.recovered_on:
        problems.append(
            f"{name}: recovered on {outcome.new_owner or 'different nodes'}, expected {expect.recovered_on} ({where})"
        )
    if expect.plaintext_packets is not None and outcome.plaintext_packets != expect.plaintext_packets:
        problems.append(
            f"{name}: {outcome.plaintext_packets} packets of protected traffic crossed the wire in clear, "
            f"expected {expect.plaintext_packets} ({where})"
        )
    for service, wanted in expect.services.items():
        measured = outcome.outages[service]
        seconds = measured.seconds
        if seconds is not None and seconds > wanted.outage_max_s:
            problems.append(
                f"{name}: {service} outage {seconds:.3f} s is more than the expected {wanted.outage_max_s:.3f} s "
                f"({_band(outcome.predicted_for(measured))}; {where})"
            )
    return problems


def _band(bounds: timers.Bounds) -> str:
    return f"predicted {bounds.lo:.2f}-{bounds.hi:.2f} s"


def judge_all(scenario: Scenario, outcomes: Sequence[Outcome]) -> list[str]:
    return [problem for outcome in outcomes for problem in judge(scenario, outcome)]
