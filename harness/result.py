"""The run record: an Outcome as JSON, saved one file per run, loaded back and validated.

Times in a result are seconds relative to the fault, except ``t_fault`` (the fault's stamp on
fe's monotonic clock, the clock of every probe attempt and SA event). A time-scaled run reports
actual seconds (``*_s``) and what they stand for at scale 1 (``*_unscaled_s`` = actual / scale).
Every field, nested ones included, is documented in README.md's "The JSON result" section, and
tests/unit/test_json_docs.py fails when the record and that list disagree: a field added here
must be documented there.

Two packet counts look alike and are not: ``esp_packets`` counts ESP packets on the lab wire
(the switch's capture, harness.wire.ESP) over the whole run, of every SA in both directions:
fe's with the VIP before, during and after the failover, and under all-traffic the SAs of fe,
be1 and be2 with dc. ``esp_by_child`` is what fe's charon counted (vici packets-in +
packets-out) on each of fe's CHILD_SAs with the VIP that is still installed when the run reads
it (after recovery, before the fault's undo), since that CHILD_SA was installed: not a breakdown
of ``esp_packets``, and much smaller: the SAs the failover replaced (all the traffic before the
fault), the ESP fe sent on a dead SA, the dc SAs and what crossed after the read are left out.

Results are read from a report folder (``runs/*.json``, one result per file, written by `save`)
or from one file holding a result or a JSON list of them (what `failover-lab run --json` writes).
Whatever is loaded is validated: a file that is not a result is one UsageError line naming it.

Owns: the schema, Outcome -> JSON, saving, loading and validating. Not: tables, report.md and
plots (harness.report, harness.plots), measuring (harness.measure).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.measure import Outcome
from harness.phases import retransmission_gaps
from harness.policy import DEFAULT as DEFAULT_POLICY
from harness.probe import SERVICES
from harness.scenario import FAULT_PARAMETERS

SCHEMA = "failover-lab/run/1"
REQUIRED_KEYS = (
    "schema",
    "backend",
    "fault",
    "profile",
    "profile_description",
    "timers",
    "rounded",
    "effective",
    "policy",
    "protected_ports",
    "time_scale",
    "strongswan_version",
    "outage_s",
    "outage_unscaled_s",
    "resolution_s",
    "predicted",
    "within_prediction",
    "kb_outage_s",
    "services",
    "old_owner",
    "new_owner",
    "t_fault",
    "phases",
    "events",
    "log_events",
    "plaintext_packets",
    "wire_packets",
    "clear_by_port",
    "credentials_in_clear",
    "attempts",
)
"""Every key the tables, report.md and the plots read: a result holding them can be redrawn."""
Result = dict[str, Any]
JSON_TYPES = {"list": "a list", "str": "a string", "int": "a number", "float": "a number", "bool": "a boolean"}
"""How a refused JSON value is named (by its Python type's name); anything else is null."""


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _unscaled(value: float | None, scale: float) -> float | None:
    return None if value is None else round(value / scale, 3)


def fault_params(outcome: Outcome) -> dict[str, float]:
    """The parameters of the fault that ran, scaled (harness.scenario.FAULT_PARAMETERS: a crash's
    and a link cut's cluster_delay, a freeze's freeze; none for the others)."""
    taken = FAULT_PARAMETERS.get(outcome.fault, ())
    return {name: value for name, value in outcome.params.values().items() if name in taken}


def to_json(outcome: Outcome) -> Result:
    """The record of one run (README.md's "The JSON result" documents every field): what
    `failover-lab run --json`, a report folder and the pytest plugin save. The CLI's `demo` and
    `run --fault` add ``run_wall_s`` to it."""
    t0 = outcome.t_fault_mono
    scale = outcome.profile.time_scale
    services = {}
    for name, outage in outcome.outages.items():
        bounds = outcome.predicted_for(outage)
        services[name] = {
            "protected": outcome.policy.protects_service(name),
            "outage_s": _r(outage.seconds),
            "resolution_s": outage.resolution,
            "last_answer_before_s": _r(outage.last_before - t0),
            "first_answer_after_s": _r(None if outage.first_after is None else outage.first_after - t0),
            "old_owner": outage.old_owner,
            "new_owner": outage.new_owner,
            "predicted": {"lo_s": _r(bounds.lo), "hi_s": _r(bounds.hi)},
            "within_prediction": outage.seconds is not None and outage.seconds in bounds,
        }
    attempts: dict[str, list[list[Any]]] = {name: [] for name in SERVICES}
    for attempt in outcome.attempts:
        attempts[attempt.service].append([_r(attempt.t0 - t0), _r(attempt.t1 - t0), attempt.node])
    kb = outcome.profile.kb_outage(outcome.fault)
    phases = outcome.phases
    return {
        "schema": SCHEMA,
        "backend": outcome.backend,
        "fault": outcome.fault,
        "profile": outcome.profile.name,
        "profile_description": outcome.profile.description,
        "timers": outcome.profile.timers(),
        "rounded": [rounded.describe() for rounded in outcome.profile.rounded],
        "effective": None
        if outcome.effective is None
        else {**outcome.effective.values(), "retransmit_gaps_s": retransmission_gaps(outcome.log_events)},
        "policy": outcome.policy.name,
        "protected_ports": "all" if outcome.policy.ports is None else [f"{p}/{n}" for p, n in outcome.policy.ports],
        "time_scale": outcome.profile.time_scale,
        "fault_params": fault_params(outcome),
        "strongswan_version": outcome.strongswan_version,
        "datapath": outcome.datapath,
        "mode": outcome.mode,
        "lab": outcome.lab,
        "started_at": outcome.started_at,
        "t_fault": outcome.t_fault_mono,
        "outage_s": _r(outcome.outage_s),
        "outage_unscaled_s": _unscaled(outcome.outage_s, scale),
        "resolution_s": outcome.resolution_s,
        "recovered": outcome.recovered,
        "predicted": {
            "lo_s": _r(outcome.predicted.lo),
            "hi_s": _r(outcome.predicted.hi),
            "lo_unscaled_s": _unscaled(outcome.predicted.lo, scale),
            "hi_unscaled_s": _unscaled(outcome.predicted.hi, scale),
            "allowance_s": outcome.allowance,
            "catch_up_s": outcome.catch_up,
        },
        "within_prediction": outcome.within_prediction,
        "kb_outage_s": None if kb is None else list(kb),
        "old_owner": outcome.old_owner,
        "new_owner": outcome.new_owner,
        "vip_moved_s": _r(outcome.vip_moved),
        "back_s": _r(outcome.back),
        "phases": {
            "start_s": _r(min(o.last_before for o in outcome.outages.values()) - t0),
            "detection_s": _r(phases.detection),
            "negotiation_s": _r(phases.negotiation),
            "data_s": _r(phases.data),
            "detected_by": phases.detected_by,
            "negotiated_with": phases.negotiated_with,
            "started_by": phases.started_by,
            "dpd_requests": phases.dpd_requests,
            "retransmits": phases.retransmits,
        },
        "services": services,
        "events": [
            {"t_s": _r(e.t - t0), "sa": e.kind, "up": e.up, "ike_id": e.ike_id, "remote": e.remote}
            for e in outcome.events
        ],
        "log_events": [{"t_s": _r(e.t - t0), "kind": e.kind, "text": e.text} for e in outcome.log_events],
        "plaintext_packets": outcome.plaintext_packets,
        "wire_packets": outcome.wire_packets,
        "capture_dropped": outcome.capture_dropped,
        "guard_drops": outcome.guard_drops,
        "esp_packets": outcome.esp_packets,
        "encapsulation": outcome.encapsulation,
        "clear_by_port": outcome.clear_by_port,
        "esp_by_child": outcome.esp_by_child,
        "ike_sas_with_vip": outcome.ike_sas,
        "credentials_in_clear": outcome.credentials_in_clear,
        "coverage": outcome.coverage,
        "attempts": attempts,
    }


def run_name(index: int, result: Result) -> str:
    """``03-fast-graceful``, and the policy when it is not the default (``04-fast-crash-none``)."""
    design = "" if result["policy"] == DEFAULT_POLICY else f"-{result['policy']}"
    return f"{index:02d}-{result['profile']}-{result['fault']}{design}"


def save(results: Sequence[Result], directory: Path) -> list[Path]:
    """One JSON file per run in ``directory``/runs, numbered in run order."""
    runs = directory / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, result in enumerate(results, 1):
        path = runs / f"{run_name(index, result)}.json"
        path.write_text(json.dumps(result, indent=1) + "\n")
        paths.append(path)
    return paths


def validate(result: object, source: str | Path) -> Result:
    """``result`` if it is a run record of this schema with every required key; otherwise one
    UsageError line naming ``source`` (a file, or a file and an index into its list)."""
    refused = f"{source}: not a failover-lab result"
    if not isinstance(result, dict):
        raise UsageError(f"{refused}: expected a JSON object, got {JSON_TYPES.get(type(result).__name__, 'null')}")
    if result.get("schema") != SCHEMA:
        found = f"schema {result['schema']!r}" if "schema" in result else "missing key 'schema'"
        raise UsageError(f"{refused}: {found}, expected schema {SCHEMA!r}")
    missing = [key for key in REQUIRED_KEYS if key not in result]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise UsageError(f"{refused}: missing key{plural} {', '.join(repr(key) for key in missing)}")
    return result


def _read(path: Path) -> list[Result]:
    """The results in one JSON file: a result, or a list of them."""
    try:
        document = json.loads(path.read_text())
    except OSError as error:
        raise UsageError(f"{path}: cannot read it: {error.strerror}") from None
    except ValueError as error:
        raise UsageError(f"{path}: not a failover-lab result: not JSON ({error})") from None
    if not isinstance(document, list):
        return [validate(document, path)]
    if not document:
        raise UsageError(f"{path}: no results: the list is empty")
    return [validate(entry, f"{path}[{index}]") for index, entry in enumerate(document)]


def load(path: Path) -> list[Result]:
    """The results at ``path``, in run order: a report folder (its runs/*.json, written by
    `save`), or a file holding one result or a list of them (written by `run --json`)."""
    if path.is_dir():
        files = sorted((path / "runs").glob("*.json"))
        if not files:
            raise UsageError(f"{path}: no results (expected runs/*.json written by demo or run --out)")
        return [result for file in files for result in _read(file)]
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder; give a report folder or a file written by run --json")
    return _read(path)
