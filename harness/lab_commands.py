"""The commands on running labs, as a person sees them: what `up` says about the lab it leaves
running, `status`, `exec`, `down` and `clean`; and the SSH side's `hosts` and `preflight`. Lines
that carry a command the user is told to run are printed unwrapped (``say``), so the command
stays whole whatever the terminal's width.

Owns: the output and exit codes of the lab commands. Not: argument parsing (harness.cli), a
lab's life (harness.lab, harness.registry).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import signal
import sys
from collections.abc import Sequence
from typing import Any

from rich.markup import escape
from rich.table import Table

from harness import inventory, lab, preflight, registry, report, runs, testhosts
from harness.backends import SSH, Backend, backend
from harness.errors import UsageError


def announce_up(running: lab.Lab) -> None:
    """What `up` says about the lab it leaves running, and the commands to use it."""
    topology = running.topology
    say(
        f"lab {topology.name} is up (backend {running.backend.name}, policy {running.policy.name}, "
        f"profile {running.profile.name}, strongSwan {running.strongswan_version}): fe {topology.address('fe')}, "
        f"be1 {topology.address('be1')}, be2 {topology.address('be2')}, VIP {topology.vip} on {running.vip_owner()}"
    )
    say(f"look inside (any node: {', '.join(running.nodes)}; any command):")
    say(f"  failover-lab exec {topology.name} fe -- swanctl --list-sas")
    say("show it: failover-lab status")
    say(f"remove it: failover-lab down {topology.name}")


def say(text: str) -> None:
    """A line as it is, never wrapped by the console: the commands in it stay whole for copying."""
    runs.console.print(text, soft_wrap=True, highlight=False, markup=False)


def _owner(entry: dict[str, Any]) -> tuple[str, str | None]:
    """Who holds a lab of a status entry, and the command that removes it (None: its run does)."""
    if entry["owner"] is None:
        return "left running by `up`", f"failover-lab down {entry['name']}"
    if entry["owner_alive"]:
        return f"used by process {entry['owner']}, which removes it when done", None
    return f"its process {entry['owner']} is gone", "failover-lab clean"


def cmd_status(arguments: argparse.Namespace) -> int:
    states = registry.registered()
    reports = [lab.status(s) for s in states if arguments.backend in (None, s.backend)]
    if arguments.json:
        print(json.dumps(reports, indent=2))
        return 0
    if not reports:
        say("no lab is running")
    for entry in reports:
        owner, remove = _owner(entry)
        say(
            f"lab {entry['name']} (backend {entry['backend']}, policy {entry['policy']}, profile {entry['profile']}, "
            f"VIP {entry['vip']}): {owner}"
        )
        if remove is not None:
            say(f"  remove it: {remove}")
        if "problem" in entry:
            say(f"  {entry['problem']}")
            continue
        view = Table()
        kernel = any("kernel_sas" in node for node in entry["nodes"].values())
        for column in ("node", "address", "charon", "VIP", "IKE SAs", *(["kernel SAs"] if kernel else [])):
            view.add_column(column)
        for name, node in entry["nodes"].items():
            sas = ", ".join(
                f"{sa['state']} to {sa['remote']} ({report.plural(sa['children'], 'CHILD_SA')})" for sa in node["sas"]
            )
            vip = {True: "owner", False: "-"}.get(node.get("vip"), "")
            row = [name, node["address"], node["charon"], vip, sas or "none"]
            if kernel:
                row.append(kernel_sas(node.get("kernel_sas", [])))
            view.add_row(*row)
        runs.console.print(view)
        warning = vip_warning(entry)
        if warning:
            runs.console.print(f"[bold red]warning:[/] {escape(warning)}", soft_wrap=True, highlight=False)
    return 0


def kernel_sas(held: list[dict[str, str]]) -> str:
    """A node's kernel SAs in a status cell, counted per pair of ends and mode (one SA per
    direction): "2 198.18.0.10<->198.18.0.100 transport"."""
    pairs: dict[tuple[str, str, str], int] = {}
    for entry in held:
        low, high = sorted((entry["src"], entry["dst"]), key=ipaddress.ip_address)
        pairs[(low, high, entry["mode"])] = pairs.get((low, high, entry["mode"]), 0) + 1
    return ", ".join(f"{count} {low}<->{high} {mode}" for (low, high, mode), count in pairs.items()) or "none"


def vip_warning(entry: dict[str, Any]) -> str | None:
    """What is wrong with the VIP of a lab's status entry, and what to do (None: one owner). Only
    for a lab left by `up` or whose owning process is gone: a live run's lab may be in the middle
    of a failover, with the VIP on both back-ends or on none for a moment."""
    if entry["owner"] is not None and entry.get("owner_alive"):
        return None
    holders = [name for name, node in entry["nodes"].items() if node.get("vip")]
    if len(holders) == 1:
        return None
    remove = f"`failover-lab down {entry['name']}`" if entry["owner"] is None else "`failover-lab clean`"
    if not holders:
        return f"no back-end holds the VIP {entry['vip']}: the lab is broken; {remove} removes it"
    return (
        f"both {' and '.join(holders)} hold the VIP {entry['vip']}: a failover was interrupted (a killed run?) "
        f"and the lab is unusable; {remove} removes it"
    )


def pick_lab(name: str | None) -> registry.State:
    """The lab called ``name``, or the only one running when no name is given."""
    states = registry.registered()
    if not states:
        raise UsageError("no lab is running: start one with `failover-lab up`")
    names = ", ".join(state.name for state in states)
    if name is None:
        if len(states) > 1:
            raise UsageError(f"several labs are running ({names}): name one")
        return states[0]
    found = next((state for state in states if state.name == name), None)
    if found is None:
        raise UsageError(f"no lab named {name!r}; the labs running are {names}")
    return found


def cmd_exec(arguments: argparse.Namespace) -> int:
    """A command inside a node, through the node's agent, with the node's own environment (its
    /run, so swanctl finds the node's charon); its output as it comes, its exit code. A command
    the node cannot run exits as in a shell: 127 when it is not found, 126 when it cannot be
    executed, with the shell's one-line message."""
    where, command = split_exec(arguments.words)
    name, node_name = (None, where[0]) if len(where) == 1 else (where[0], where[1])
    state = pick_lab(name)
    nodes = state.lab_backend().nodes(state.topology, registry.directory(state.topology.qualified))
    if node_name not in nodes:
        raise UsageError(f"no node {node_name!r} in lab {state.name}: choose one of {', '.join(nodes)}")
    node = nodes[node_name]
    process = node.spawn(exec_argv(node_name, command), capture=True)
    try:
        for line in process.lines():
            sys.stdout.write(line)
            sys.stdout.flush()
        return process.wait(5)
    except KeyboardInterrupt:
        process.signal(signal.SIGINT)
        raise
    except BrokenPipeError:  # the reader is gone (`| head -1`): the command ends as it would in a pipe
        process.stop()
        raise
    finally:
        process.close()
        node.close()


def exec_argv(node_name: str, command: Sequence[str]) -> list[str]:
    """``command`` started by the node's shell, which replaces itself with it (same PID, same
    environment): a command it cannot find or execute gets the shell's message and exit code."""
    return ["sh", "-c", 'exec "$@"', node_name, *command]


def split_exec(words: Sequence[str]) -> tuple[list[str], list[str]]:
    usage = "use failover-lab exec [LAB] NODE -- COMMAND [ARGUMENTS...]"
    if "--" not in words:
        raise UsageError(f"exec needs `--` before the command: {usage}")
    at = list(words).index("--")
    where, command = list(words[:at]), list(words[at + 1 :])
    if not 1 <= len(where) <= 2 or not command:
        raise UsageError(f"exec needs a node and a command: {usage}")
    return where, command


def cmd_down(arguments: argparse.Namespace) -> int:
    state = pick_lab(arguments.name)
    if state.in_use():
        assert state.owner is not None
        raise UsageError(f"lab {state.name} belongs to process {state.owner.pid}, which removes it when done")
    registry.remove(state.lab_backend(), state.topology.qualified)
    runs.console.print(f"lab {state.name} removed")
    return 0


def cmd_clean(arguments: argparse.Namespace) -> int:
    only: Backend | None
    if arguments.inventory is not None:
        only = backend(SSH, arguments.inventory, arguments.insecure_host_keys)
    else:
        only = backend(arguments.backend) if arguments.backend else None
    removed, skipped = registry.clean(force=arguments.force, only=only)
    runs.console.print(f"removed {', '.join(removed)}" if removed else "nothing to clean")
    if skipped:
        runs.console.print(f"left {', '.join(skipped)}: in use by a live run or test (--force removes them too)")
    return 0


def cmd_hosts(arguments: argparse.Namespace) -> int:
    if arguments.action == "down":
        testhosts.down()
        say("test hosts removed")
        return 0
    written = testhosts.up(arguments.out)
    say(f"test hosts up: fe, be1, be2 and dc, reachable over SSH only; inventory written to {written}")
    say(
        f"  use them: failover-lab preflight --inventory {written}; "
        f"failover-lab up --backend ssh --inventory {written}; remove them: failover-lab hosts down"
    )
    return 0


def cmd_preflight(arguments: argparse.Namespace) -> int:
    """The inventory's hosts as a table; their problems as the error (exit 2), one line each."""
    found = preflight.check(inventory.load(arguments.inventory), arguments.insecure_host_keys)
    table = Table(title=f"hosts of {escape(str(arguments.inventory))}")
    for column in ("node", "host", "strongSwan", "datapaths", "firewall", "tcpdump", "python", "lab address", "VIP"):
        table.add_column(column)
    for role, verdict in found.verdicts.items():
        facts, host = verdict.facts, verdict.host
        table.add_row(
            role,
            escape(f"{host.user}@{host.host}:{host.port}" + (" (sudo)" if host.sudo else "")),
            escape(facts.get("strongswan") or "-") if facts else "not reached",
            "/".join(verdict.datapaths) or "-",
            verdict.firewall or "-",
            _yes(verdict, "tcpdump"),
            escape(facts.get("python") or "-"),
            escape(f"{host.lab_address} on {host.lab_interface}") + (" ok" if verdict.has("address") else ""),
            "owner" if role == found.vip_owner else "",
        )
    runs.console.print(table)
    if found.problems:
        raise UsageError("\n".join(found.problems))
    say(
        f"all {len(found.verdicts)} hosts ready: datapath {found.datapath}, "
        f"VIP {found.inventory.vip.ip} on {found.vip_owner}"
    )
    return 0


def _yes(verdict: preflight.Verdict, key: str) -> str:
    return "-" if not verdict.facts else "yes" if verdict.has(key) else "no"
