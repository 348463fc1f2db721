"""Every KB policy design on a real lab: what crosses the wire in clear and what in ESP, the
credentials an eavesdropper sees, and failover per protected service."""

import pytest

from harness import lab, measure, policy, timers
from harness.measure import Outcome

VIP_PORTS = ("udp/7", "tcp/80", "tcp/110", "tcp/143")
DC_PORTS = [f"{proto}/{port}" for proto, port in policy.DC_PORTS]


def measured(backend_name: str, policy_name: str, fault: str) -> Outcome:
    with lab.running(timers.profile("fast"), backend_name, policy_name=policy_name) as running:
        return measure.run(running, fault)


def assert_coverage_on_the_wire(outcome: Outcome) -> None:
    chosen = outcome.policy
    for key in VIP_PORTS:
        proto, port = key.split("/")
        if chosen.protects(proto, int(port)):
            assert outcome.clear_by_port[key] == 0, f"{chosen.name}: {key} in clear"
        else:
            assert outcome.clear_by_port[key] > 0, f"{chosen.name}: {key} should cross in clear"
    for key in DC_PORTS:
        assert (outcome.clear_by_port[key] == 0) is chosen.dc, f"{chosen.name}: {key}"
    assert all(all(answers.values()) for answers in outcome.coverage.values()), outcome.coverage
    assert outcome.plaintext_packets == 0
    assert (outcome.esp_packets > 0) is chosen.ipsec


@pytest.mark.parametrize("policy_name", list(policy.POLICIES))
def test_policy_coverage_through_a_graceful_move(backend_name: str, policy_name: str) -> None:
    outcome = measured(backend_name, policy_name, "graceful")
    assert_coverage_on_the_wire(outcome)
    exposed = outcome.credentials_in_clear
    if policy_name == "none":
        assert exposed["pop3 PASS"] > 0 and exposed["imap LOGIN"] > 0  # an eavesdropper reads them
    else:
        assert exposed == {"pop3 PASS": 0, "imap LOGIN": 0}
    if outcome.policy.port_scoped:  # one CHILD_SA per protected port, each carrying its traffic
        assert sorted(outcome.esp_by_child) == sorted(f"{p}-{n}" for p, n in outcome.policy.ports or ())
        assert all(packets > 0 for packets in outcome.esp_by_child.values())
    for service, outage in outcome.outages.items():
        bounds = outcome.predicted_for(outage)
        assert outage.seconds in bounds, f"{service}: {outage.seconds} outside {bounds}"


def test_a_crash_costs_protected_services_dpd_and_clear_ones_only_the_vip_move(backend_name: str) -> None:
    outcome = measured(backend_name, "mail-passwords", "crash")
    assert_coverage_on_the_wire(outcome)
    assert all(o.seconds is not None for o in outcome.outages.values()), "a service never recovered"
    seconds = {service: o.seconds or 0.0 for service, o in outcome.outages.items()}
    for service, outage in outcome.outages.items():
        assert outage.seconds in outcome.predicted_for(outage), service
    # POP3 and IMAP wait for DPD; HTTP and the UDP echo only for the cluster to move the VIP.
    assert min(seconds["pop3"], seconds["imap"]) > max(seconds["http"], seconds["udp"]) + 2
