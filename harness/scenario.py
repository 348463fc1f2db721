"""Scenario files: a fault, the profiles to try it with, how often, and what must hold.

    # scenarios/crash.yaml
    description: A crash of the active back-end, found by DPD
    profiles: [fast, {name: cautious, dpd_delay: 5, retransmit_timeout: 1, retransmit_base: 1}]
    time_scale: 1            # or 1/30: every timer (and the cluster's) multiplied
    backend: netns           # optional: otherwise the command line's choice
    # backend: ssh with inventory: hosts.yaml (your hosts, relative to this file's folder)
    # insecure_host_keys: false   # ssh: accept hosts missing from known_hosts
    policy: mail-passwords   # what IPsec protects (default all-traffic)
    fault: {kind: crash, cluster_delay: 1.0}   # cluster_delay: crash, link-cut, takeover-announce; freeze: freeze
    repeat: 1
    source: opnsense/core#3708   # optional: the public issue it reproduces (or a URL)
    expect:                  # optional: without it the runs are measured, nothing judged
      outage_max_s: 6.5      # overall outage at most (actual seconds)
      outage_min_s: 3        # ... and at least (the problem a scenario reproduces showed)
      within_prediction: true
      recovered_on: be2
      plaintext_packets: 0
      services: {pop3: {outage_max_s: 6.5}}   # per service: outage_max_s and/or outage_min_s
      ike_sas_max: 1         # IKE SAs fe holds with the VIP once settled (ike_sas_min: at least)

Parsed strictly (unknown keys, and a fault parameter its kind does not take, rejected); every
problem is listed, one line each naming the file and the field. `failover-lab run FILE` and
`pytest scenarios/` (harness.pytest_plugin) run them the same way; the command line may override
repeat, time_scale, policy, backend, inventory and insecure_host_keys (``override``). ``inventory``
goes with ``backend: ssh`` and only with it, both ways.

Owns: the scenario models, loading (meaning included: the timer model must accept every profile
for the fault, checked before any lab exists), running and judging. Not: measuring
(harness.measure), the model's own checks (harness.timers.check).
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    Tag,
)

from harness import faults, lab, measure, policy, probe, timers
from harness.backends import AUTO, SSH
from harness.errors import UsageError
from harness.measure import Outcome
from harness.userfiles import ProfileModel, ProfileName, parse, validate

FaultKind = Literal[
    "graceful",
    "graceful-noblock",
    "crash",
    "freeze",
    "link-cut",
    "reboot",
    "reboot-announce",
    "takeover-announce",
    "reauth",
    "graceful-announce",
]
Service = Literal["udp", "http", "pop3", "imap"]
Backend = Literal["auto", "netns", "docker", "docker:bookworm", "uml", "ssh"]
PolicyName = Literal["none", "mail-passwords", "mail-all", "all-traffic"]

SECONDS_MAX = 3600.0
"""The longest cluster delay or freeze a scenario or an option may ask for (before scaling)."""
REPEAT_MAX = 100
"""The most runs per profile a scenario or an option may ask for."""


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


class _Fault(Strict):
    def params(self) -> timers.FaultParams:
        """The cluster's timers for this fault, unscaled (those its kind does not take keep
        their defaults, unused)."""
        return timers.FaultParams(**self.model_dump(exclude={"kind"}))


ClusterDelay = Annotated[
    float,
    Field(ge=0, le=SECONDS_MAX, description="seconds until the standby takes the VIP, before scaling (default 1)"),
]
FreezeSeconds = Annotated[
    float, Field(gt=0, le=SECONDS_MAX, description="seconds the charon stays stopped, before scaling (default 3)")
]


FirewallIdle = Annotated[
    float,
    Field(
        ge=0,
        le=SECONDS_MAX,
        description="fe sits behind a stateful firewall that lets IKE from the VIP in only on a UDP flow used "
        "within this many seconds, and ESP always (kernel datapath: uml only), before scaling (default 0: none)",
    ),
]


class GracefulFault(_Fault):
    """The active back-end blocks new IKE, deletes its SAs and releases the VIP; the standby takes it.
    With firewall_idle, fe's stateful firewall may drop the DELETE."""

    kind: Literal["graceful"]
    firewall_idle: FirewallIdle = timers.FaultParams.firewall_idle


class GracefulNoblockFault(_Fault):
    """A graceful move without blocking new IKE: fe races the VIP move."""

    kind: Literal["graceful-noblock"]


class CrashFault(_Fault):
    """The active back-end falls silent and its charon is killed; the standby takes the VIP after
    cluster_delay."""

    kind: Literal["crash"]
    cluster_delay: ClusterDelay = timers.FaultParams.cluster_delay


class FreezeFault(_Fault):
    """The active charon (and its userspace ESP datapath) stopped for freeze seconds, then continued."""

    kind: Literal["freeze"]
    freeze: FreezeSeconds = timers.FaultParams.freeze


class LinkCutFault(_Fault):
    """The active back-end's link goes down (charon alive, isolated); the standby takes the VIP after
    cluster_delay."""

    kind: Literal["link-cut"]
    cluster_delay: ClusterDelay = timers.FaultParams.cluster_delay


class RebootFault(_Fault):
    """The active charon killed and restarted at once without SA state; the VIP stays."""

    kind: Literal["reboot"]


class RebootAnnounceFault(_Fault):
    """As reboot, and the restarted back-end brings its tunnel to fe up itself (INITIAL_CONTACT)."""

    kind: Literal["reboot-announce"]


AnnounceEarly = Annotated[
    float,
    Field(
        ge=0,
        le=SECONDS_MAX,
        description="seconds before the VIP is on the new owner that its charon begins to initiate, before "
        "scaling (default 0: once it is there; longer than cluster_delay: before the crash, a standby that "
        "initiates all along)",
    ),
]


class TakeoverAnnounceFault(_Fault):
    """A crash whose standby takes the VIP after cluster_delay and brings its tunnel to fe up itself,
    beginning announce_early seconds before the VIP is on it."""

    kind: Literal["takeover-announce"]
    cluster_delay: ClusterDelay = timers.FaultParams.cluster_delay
    announce_early: AnnounceEarly = timers.FaultParams.announce_early


LinkDelay = Annotated[
    float,
    Field(
        ge=0,
        le=SECONDS_MAX,
        description="one-way seconds added to everything the active back-end sends (netem; uml only), before "
        "scaling (default 0)",
    ),
]


class ReauthFault(_Fault):
    """fe reauthenticates its IKE SA with the VIP's owner now; the owner sends everything link_delay late."""

    kind: Literal["reauth"]
    link_delay: LinkDelay = timers.FaultParams.link_delay


class GracefulAnnounceFault(_Fault):
    """A graceful move whose new owner brings its tunnel to fe up itself while fe re-initiates:
    both ends initiate."""

    kind: Literal["graceful-announce"]


FAULT_MODELS: tuple[type[_Fault], ...] = (
    GracefulFault,
    GracefulNoblockFault,
    CrashFault,
    FreezeFault,
    LinkCutFault,
    RebootFault,
    RebootAnnounceFault,
    TakeoverAnnounceFault,
    ReauthFault,
    GracefulAnnounceFault,
)
"""One model per fault kind, in FaultKind's order: each takes only the parameters its kind uses."""
FaultModel = Annotated[
    GracefulFault
    | GracefulNoblockFault
    | CrashFault
    | FreezeFault
    | LinkCutFault
    | RebootFault
    | RebootAnnounceFault
    | TakeoverAnnounceFault
    | ReauthFault
    | GracefulAnnounceFault,
    Field(discriminator="kind"),
]
FAULT_PARAMETERS: dict[str, tuple[str, ...]] = {
    get_args(model.model_fields["kind"].annotation)[0]: tuple(name for name in model.model_fields if name != "kind")
    for model in FAULT_MODELS
}
"""The parameters each fault kind takes: crash and link-cut cluster_delay, freeze freeze,
takeover-announce cluster_delay and announce_early, reauth link_delay, graceful firewall_idle."""


class ServiceExpectations(Strict):
    outage_max_s: float | None = Field(None, gt=0, description="this service's outage at most (actual seconds)")
    outage_min_s: float | None = Field(
        None, gt=0, description="this service's outage at least (actual seconds): the problem showed on it"
    )


class Expectations(Strict):
    outage_max_s: float | None = Field(None, gt=0)
    outage_min_s: float | None = Field(
        None, gt=0, description="overall outage at least (actual seconds): the problem a scenario reproduces showed"
    )
    within_prediction: bool = True
    recovered_on: Literal["be1", "be2"] | None = None
    plaintext_packets: int | None = Field(0, ge=0)
    services: dict[Service, ServiceExpectations] = Field(default_factory=dict)
    ike_sas_max: int | None = Field(
        None, ge=1, description="IKE SAs fe holds with the VIP once the lab settled, at most (1: no duplicates)"
    )
    ike_sas_min: int | None = Field(
        None, ge=1, description="... and at least (2: both ends initiated, the problem showed)"
    )


SOURCE_PATTERN = re.compile(r"^(?:[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+#[0-9]+|https://\S+)$")
"""A public issue as GitHub writes it (owner/repo#number) or a URL."""


def _source(value: str) -> str:
    if not SOURCE_PATTERN.match(value):
        raise ValueError(f"must name a public issue as owner/repo#number or an https:// URL, got {value!r}")
    return value


class ScenarioModel(Strict):
    description: str = ""
    source: Annotated[str, AfterValidator(_source)] | None = Field(
        None, description="the public issue the scenario reproduces: owner/repo#number or an https:// URL"
    )
    backend: Backend | None = None
    inventory: str | None = Field(
        None, min_length=1, description="backend ssh: your hosts' inventory file, relative to this file's folder"
    )
    insecure_host_keys: bool = Field(
        False, description="backend ssh: accept hosts missing from known_hosts (each unknown key is printed)"
    )
    policy: PolicyName = "all-traffic"
    time_scale: Annotated[float, PlainValidator(timers.parse_scale, json_schema_input_type=str | float)] = 1.0
    profiles: list[ProfileEntry] = Field(min_length=1)
    fault: FaultModel
    repeat: int = Field(1, ge=1, le=REPEAT_MAX)
    expect: Expectations | None = None


@dataclass(frozen=True)
class Scenario:
    """A loaded scenario: profiles resolved (and scaled), ready to run."""

    name: str
    path: Path
    model: ScenarioModel

    @property
    def profiles(self) -> list[timers.Profile]:
        return [self.profile_at(index) for index in range(len(self.model.profiles))]

    def profile_at(self, index: int) -> timers.Profile:
        """The scenario's profile ``index``, scaled; one the scaling makes unfit for charon (a
        retransmission timeout below its millisecond) is a UsageError line naming the entry."""
        entry = self.model.profiles[index]
        profile = timers.profile(entry) if isinstance(entry, str) else entry.to_profile(entry.name, self.path)
        try:
            return profile.scaled(self.model.time_scale)
        except UsageError as error:
            problem = str(error).removeprefix(f"profile {profile.name}: ")
            scale = timers.scale_text(self.model.time_scale)
            raise UsageError(
                f"{self.path}: profiles[{index}] ({profile.name}) at time_scale {scale}: {problem}"
            ) from None

    @property
    def inventory(self) -> Path | None:
        """The file's ``inventory`` as a path: relative to the file's folder, ``~`` the home."""
        if self.model.inventory is None:
            return None
        return Path(os.path.abspath(self.path.parent / Path(self.model.inventory).expanduser()))

    @property
    def params(self) -> timers.FaultParams:
        return self.model.fault.params().scaled(self.model.time_scale)

    def item_name(self, profile: timers.Profile) -> str:
        return f"{self.name}[{profile.name}]"


def load(path: Path) -> Scenario:
    """A scenario file parsed strictly, then checked for meaning: no profile twice, and the timer
    model accepts every profile for the fault. A UsageError lists every problem, one line each;
    no lab exists yet."""
    model = parse(path, ScenarioModel, "a scenario needs at least 'profiles' and 'fault'")
    return _checked(Scenario(path.stem, path, model))


OVERRIDABLE = ("repeat", "time_scale", "policy", "backend", "inventory", "insecure_host_keys")
"""The settings the command line may override (--repeat, --time-scale, --policy, --backend,
--inventory, --insecure-host-keys); the profiles and the fault are what a scenario is, so they
are not."""


def override(scenario: Scenario, settings: dict[str, Any]) -> Scenario:
    """The scenario with some of its OVERRIDABLE settings replaced, validated and checked as if
    the file had said them. A backend other than ssh takes the file's inventory with the file's
    backend (an inventory given along with it is refused, as in a file)."""
    unknown = set(settings) - set(OVERRIDABLE)
    if unknown:
        raise ValueError(f"not overridable: {', '.join(sorted(unknown))}")
    data = {**scenario.model.model_dump(exclude_unset=True), **settings}
    if settings.get("backend", SSH) != SSH and "inventory" not in settings:
        data.pop("inventory", None)
    return _checked(Scenario(scenario.name, scenario.path, validate(scenario.path, data, ScenarioModel)))


def _checked(scenario: Scenario) -> Scenario:
    problems = _unfit_when_scaled(scenario)
    if not problems:
        problems = _duplicates(scenario) + _refused_by_the_model(scenario)
    if not problems:
        problems = never_met(scenario)
    problems = _where_problems(scenario) + problems
    if problems:
        raise UsageError("\n".join(problems))
    return scenario


def _where_problems(scenario: Scenario) -> list[str]:
    """``backend: ssh`` and ``inventory`` each without the other, or an inventory that is not there."""
    backend, inventory = scenario.model.backend, scenario.inventory
    if backend == SSH and inventory is None:
        return [
            f"{scenario.path}: backend: ssh needs the inventory of your hosts: add inventory: FILE "
            "(relative to this file's folder; see inventories/example.yaml)"
        ]
    if inventory is None:
        return []
    if backend != SSH:
        which = "names no backend" if backend is None else f"says backend {backend}"
        return [
            f"{scenario.path}: inventory: only backend ssh takes one, and the file {which}: "
            "set backend: ssh or drop inventory"
        ]
    if not inventory.is_file():
        return [
            f"{scenario.path}: inventory: {scenario.model.inventory} is not a file (relative to this file's folder)"
        ]
    return []


def _unfit_when_scaled(scenario: Scenario) -> list[str]:
    problems = []
    for index in range(len(scenario.model.profiles)):
        try:
            scenario.profile_at(index)
        except UsageError as error:
            problems.append(str(error))
    return problems


def _duplicates(scenario: Scenario) -> list[str]:
    names = [p.name for p in scenario.profiles]
    duplicates = sorted({name for name in names if names.count(name) > 1}, key=names.index)
    return [f"{scenario.path}: profiles: {name} appears more than once" for name in duplicates]


def _refused_by_the_model(scenario: Scenario) -> list[str]:
    problems = []
    for index, profile in enumerate(scenario.profiles):
        try:
            timers.check(profile, scenario.model.fault.kind, scenario.params)
        except UsageError as error:
            problems.append(f"{scenario.path}: profiles[{index}] ({profile.name}): {error}")
    return problems


def lowest_bands(scenario: Scenario, profile: timers.Profile) -> dict[str, timers.Bounds]:
    """Every service's predicted band for ``profile`` before any run, as low as a run could make
    it: the cluster acting at once or after exactly its delay and the node back at once (what a
    run measures only widens the band upwards), and ESP from the peer postponing DPD or not, in UDP
    or not (the strongSwan version and datapath decide, unknown until a lab runs)."""
    protects = policy.policy(scenario.model.policy).protects_service
    bands = {}
    for service, resolution in probe.INTERVALS.items():
        both = [
            timers.predict(
                scenario.model.fault.kind,
                profile,
                scenario.params,
                resolution,
                protected=protects(service),
                esp_defers_dpd=defers,
                esp_in_udp=in_udp,
            )
            for defers, in_udp in itertools.product((True, False), repeat=2)
        ]
        bands[service] = timers.Bounds(min(b.lo for b in both), max(b.hi for b in both))
    return bands


def never_met(scenario: Scenario) -> list[str]:
    """One line per outage_max_s below the lowest predicted band of a profile (lowest_bands): no
    run can meet it, so load refuses the file."""
    expect = scenario.model.expect
    if expect is None:
        return []
    problems = []
    pairs = [("expect.", expect.outage_min_s, expect.outage_max_s)]
    pairs += [(f"expect.services.{s}.", w.outage_min_s, w.outage_max_s) for s, w in expect.services.items()]
    for prefix, least, most in pairs:
        if least is not None and most is not None and least > most:
            problems.append(
                f"{scenario.path}: {prefix}outage_min_s: {least:g} s is more than {prefix}outage_max_s "
                f"{most:g} s: no run can meet both"
            )
    least, most = expect.ike_sas_min, expect.ike_sas_max
    if (least is not None or most is not None) and not policy.policy(scenario.model.policy).ipsec:
        problems.append(
            f"{scenario.path}: expect.ike_sas_min/ike_sas_max: policy {scenario.model.policy} has no IPsec, "
            "so no IKE SAs to count; drop them or choose another policy"
        )
    if least is not None and most is not None and least > most:
        problems.append(
            f"{scenario.path}: expect.ike_sas_min: {least} is more than expect.ike_sas_max {most}: no run can meet both"
        )
    for index, profile in enumerate(scenario.profiles):
        bands = lowest_bands(scenario, profile)
        limits = [("expect.outage_max_s", expect.outage_max_s, measure.overall(bands))]
        limits += [
            (f"expect.services.{service}.outage_max_s", wanted.outage_max_s, bands[service])
            for service, wanted in expect.services.items()
        ]
        for field, limit, band in limits:
            if limit is not None and limit < band.lo:
                shown = f"{band.lo:.2f}-{band.hi:.2f} s"
                problems.append(
                    f"{scenario.path}: {field}: {limit:g} s lies below the lowest predicted band {shown} "
                    f"of profiles[{index}] ({profile.name}) for {scenario.model.fault.kind}: no run can meet it; "
                    f"raise it to at least {band.lo:.2f} or change the profile"
                )
    return problems


def schema() -> dict[str, Any]:
    """JSON schema of scenario files, for editors (scenarios/scenario.schema.json)."""
    generated: dict[str, Any] = ScenarioModel.model_json_schema()
    generated["title"] = "failover-lab scenario"
    return generated


def schema_text() -> str:
    return json.dumps(schema(), indent=2, sort_keys=True) + "\n"


MeasureOn = Callable[[lab.Lab, str, timers.FaultParams], Outcome]
"""How one run is measured on a running lab: measure.run, or the CLI's run with its live lines."""


def run(
    scenario: Scenario, profile: timers.Profile, backend_name: str = AUTO, measure_on: MeasureOn = measure.run
) -> list[Outcome]:
    """The scenario's fault ``repeat`` times with one of its profiles, each on a fresh lab, on
    the scenario's own backend when it names one (ssh: on the hosts of its inventory), else on
    ``backend_name`` (callers apply an explicit choice of the user with ``override`` first and
    say so)."""
    where = scenario.model.backend or backend_name
    faults.refuse_what_the_backend_cannot_inject(scenario.model.fault.kind, scenario.params, where)
    outcomes = []
    for _ in range(scenario.model.repeat):
        with lab.running(
            profile,
            where,
            policy_name=scenario.model.policy,
            inventory=scenario.inventory,
            insecure_host_keys=scenario.model.insecure_host_keys,
        ) as running:
            outcomes.append(measure_on(running, scenario.model.fault.kind, scenario.params))
    return outcomes


def judge(scenario: Scenario, outcome: Outcome) -> list[str]:
    """One sentence per expectation the outcome does not meet (empty: all met). A scenario
    without ``expect`` judges nothing but recovery: a run whose services never answer again
    fails, as any run does."""
    expect = scenario.model.expect
    name = scenario.item_name(outcome.profile)
    where = f"{outcome.backend}, strongSwan {outcome.strongswan_version}"
    band = _band(outcome.predicted)
    outage = outcome.outage_s
    if outage is None:
        silent = ", ".join(s for s, o in outcome.outages.items() if o.seconds is None)
        return [f"{name}: {silent} never answered again after the {outcome.fault} ({band}; {where})"]
    if expect is None:
        return []
    problems = []
    if expect.outage_min_s is not None and outage < expect.outage_min_s:
        problems.append(
            f"{name}: outage {outage:.3f} s is less than the expected {expect.outage_min_s:.3f} s: the problem did not "
            f"show ({band}; {where})"
        )
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
            f"{name}: {_count(outcome.plaintext_packets, 'packet')} of protected traffic crossed the wire in "
            f"clear, expected {expect.plaintext_packets} ({where})"
        )
    problems += _judge_ike_sas(expect, outcome, name, where)
    for service, wanted in expect.services.items():
        measured = outcome.outages[service]
        seconds = measured.seconds
        service_band = _band(outcome.predicted_for(measured))
        if seconds is not None and wanted.outage_max_s is not None and seconds > wanted.outage_max_s:
            problems.append(
                f"{name}: {service} outage {seconds:.3f} s is more than the expected {wanted.outage_max_s:.3f} s "
                f"({service_band}; {where})"
            )
        if seconds is not None and wanted.outage_min_s is not None and seconds < wanted.outage_min_s:
            problems.append(
                f"{name}: {service} outage {seconds:.3f} s is less than the expected {wanted.outage_min_s:.3f} s: the "
                f"problem did not show ({service_band}; {where})"
            )
    return problems


def _judge_ike_sas(expect: Expectations, outcome: Outcome, name: str, where: str) -> list[str]:
    """The IKE SA count expectations (a run without IPsec has none to count)."""
    held = outcome.ike_sas
    if held is None or (expect.ike_sas_max is None and expect.ike_sas_min is None):
        return []
    if expect.ike_sas_max is not None and held > expect.ike_sas_max:
        return [
            f"{name}: fe holds {_count(held, 'IKE SA')} with the VIP, expected at most {expect.ike_sas_max}: "
            f"both ends initiated ({where})"
        ]
    if expect.ike_sas_min is not None and held < expect.ike_sas_min:
        return [
            f"{name}: fe holds {_count(held, 'IKE SA')} with the VIP, expected at least {expect.ike_sas_min}: "
            f"the problem did not show ({where})"
        ]
    return []


def _band(bounds: timers.Bounds) -> str:
    return f"predicted {bounds.lo:.2f}-{bounds.hi:.2f} s"


def _count(number: int, noun: str) -> str:
    """``1 packet``, ``2 packets``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def judge_all(scenario: Scenario, outcomes: Sequence[Outcome]) -> list[str]:
    return [problem for outcome in outcomes for problem in judge(scenario, outcome)]
