"""Phase breakdown from synthetic SA events and charon log lines."""

import pytest

from harness.phases import breakdown, parse_log, retransmission_gaps
from harness.sa import SaEvent

LOG = """\
1000.100 08[IKE] sending DPD request
1000.100 08[ENC] generating INFORMATIONAL request 2 [ ]
1001.100 13[IKE] retransmit 1 of request with message ID 2
1002.100 09[IKE] retransmit 2 of request with message ID 2
1003.100 14[IKE] giving up after 2 retransmits
1003.100 14[IKE] initiating IKE_SA vip[2] to 198.18.0.100
1003.104 12[IKE] IKE_SA vip[2] established between 198.18.0.10[fe]...198.18.0.100[vip]
1003.104 12[IKE] CHILD_SA svc{3} established with SPIs 3100ba1a_i 257061f4_o
not a log line
"""
WALL_TO_MONO = -900.0  # log epoch 1000.0 is 100.0 on the monotonic clock


def event(t: float, kind: str, up: bool) -> SaEvent:
    return SaEvent(t, kind, up, "1", "198.18.0.100")


def test_parse_log_keeps_failover_lines_on_the_monotonic_clock() -> None:
    events = parse_log(LOG, WALL_TO_MONO, since=100.0)
    assert [e.kind for e in events] == [
        "dpd",
        "retransmit",
        "retransmit",
        "gave-up",
        "initiate",
        "ike-established",
        "child-established",
    ]
    assert events[0].t == pytest.approx(100.1)
    assert parse_log(LOG, WALL_TO_MONO, since=102.0)[0].kind == "retransmit"


IKEV1_LOG = """\
1000.100 08[IKE] sending DPD request
1000.100 08[ENC] generating INFORMATIONAL_V1 request 2318 [ HASH N(DPD) ]
1006.100 14[JOB] DPD check timed out, enforcing DPD action
1006.100 14[IKE] initiating Main Mode IKE_SA vip[2] to 198.18.0.100
1007.100 14[IKE] sending retransmit 1 of request message ID 0, seq 1
1007.140 12[IKE] IKE_SA vip[2] established between 198.18.0.10[fe]...198.18.0.100[vip]
1007.150 12[IKE] CHILD_SA all{3} established with SPIs 3100ba1a_i 257061f4_o and TS 198.18.0.10/32 === 198.18.0.100/32
"""


def test_ikev1_s_lines_mean_what_ikev2_s_do() -> None:
    """IKEv1's DPD gives up with its own line (no retransmitted R_U_THERE), starts main mode, and
    retransmits with a message ID and a sequence number."""
    events = parse_log(IKEV1_LOG, WALL_TO_MONO, since=100.0)
    assert [e.kind for e in events] == [
        "dpd",
        "gave-up",
        "initiate",
        "retransmit",
        "ike-established",
        "child-established",
    ]


def test_crash_breakdown_detected_by_dpd() -> None:
    t_fault = 98.0
    sa = [
        event(90, "ike", True),
        event(103.101, "ike", False),
        event(103.105, "ike", True),
        event(103.105, "child", True),
    ]
    phases = breakdown(t_fault, t_fault, 103.12, sa, parse_log(LOG, WALL_TO_MONO, t_fault), "be2")
    assert phases.detection == pytest.approx(5.101)
    assert phases.negotiation == pytest.approx(0.004)
    assert phases.data == pytest.approx(0.015)
    assert phases.total() == pytest.approx(103.12 - t_fault)
    assert (phases.detected_by, phases.negotiated_with, phases.started_by) == ("DPD", "be2", "restart")
    assert (phases.dpd_requests, phases.retransmits) == (1, 2)


def test_a_trap_starts_the_recovery_with_an_acquire() -> None:
    """Profile recovery trap on the kernel datapath: DPD gives up, charon installs the trap, the
    probes' next packet meets it and the kernel asks charon for an SA."""
    log = LOG.replace(
        "1003.100 14[IKE] initiating IKE_SA",
        "1003.101 11[CFG] creating acquire job for policy 198.18.0.10/32[tcp/110] === 198.18.0.100/32[tcp/pop3] "
        "with reqid {1}\n1003.101 14[IKE] initiating IKE_SA",
    )
    events = parse_log(log, WALL_TO_MONO, 98.0)
    assert "acquire" in [e.kind for e in events]
    sa = [event(103.101, "ike", False), event(103.105, "ike", True), event(103.105, "child", True)]
    phases = breakdown(98.0, 98.0, 103.12, sa, events, "be2")
    assert (phases.detected_by, phases.started_by) == ("DPD", "acquire")


def test_a_restart_that_meets_the_trap_too_is_still_a_restart() -> None:
    """The kernel datapath keeps fe's trap policies installed; a packet between charon's own
    re-initiation and the new SA meets them and is logged as an acquire, after the initiation."""
    log = LOG.replace(
        "1003.104 12[IKE] IKE_SA vip[2] established",
        "1003.102 11[CFG] creating acquire job for policy 198.18.0.10/32 === 198.18.0.100/32 with reqid {1}\n"
        "1003.104 12[IKE] IKE_SA vip[2] established",
    )
    sa = [event(103.101, "ike", False), event(103.105, "ike", True), event(103.105, "child", True)]
    phases = breakdown(98.0, 98.0, 103.12, sa, parse_log(log, WALL_TO_MONO, 98.0), "be2")
    assert phases.started_by == "restart"


def test_an_announced_reboot_is_detected_by_initial_contact() -> None:
    log = (
        "2000.070 05[IKE] destroying duplicate IKE_SA for peer 'vip', received INITIAL_CONTACT\n"
        "2000.071 05[IKE] IKE_SA vip[3] established between 198.18.0.10[fe]...198.18.0.100[vip]\n"
        "2000.072 05[IKE] CHILD_SA all{5} established with SPIs cca54b70_i ea2808a4_o\n"
    )
    t_fault = 1100.0
    sa = [event(1100.0705, "ike", False), event(1100.071, "ike", True), event(1100.072, "child", True)]
    phases = breakdown(t_fault, t_fault, 1100.09, sa, parse_log(log, WALL_TO_MONO, t_fault), "be1")
    assert (phases.detected_by, phases.negotiated_with, phases.dpd_requests) == ("INITIAL_CONTACT", "be1", 0)
    assert phases.started_by == "peer"
    assert phases.total() == pytest.approx(0.09)


def test_the_last_negotiation_before_recovery_counts_in_a_race() -> None:
    log = "200.003 13[IKE] received DELETE for IKE_SA vip[1]\n"
    sa = [
        event(200.003, "ike", False),
        event(200.007, "child", True),  # won the race with the old owner ...
        event(205.009, "ike", False),  # ... stranded by the VIP move, found by DPD
        event(205.015, "child", True),
    ]
    log += "205.009 14[IKE] giving up after 2 retransmits\n"
    phases = breakdown(200.0, 200.002, 205.04, sa, parse_log(log, 0.0, 199.0), "be2")
    assert phases.detection == pytest.approx(5.007)
    assert phases.negotiation == pytest.approx(0.006)
    assert phases.total() == pytest.approx(205.04 - 200.002)
    assert phases.detected_by == "DPD"


def test_a_short_freeze_is_never_detected() -> None:
    phases = breakdown(10.0, 10.0, 13.03, [event(5.0, "child", True)], [], "be1")
    assert (phases.detection, phases.negotiation, phases.detected_by, phases.negotiated_with, phases.started_by) == (
        None,
        None,
        None,
        None,
        None,
    )
    assert phases.data == pytest.approx(3.03)


def test_no_recovery_leaves_data_open() -> None:
    phases = breakdown(10.0, 10.0, None, [event(12.0, "ike", False)], [], None)
    assert phases.detection == pytest.approx(2.0)
    assert phases.data is None and phases.negotiation is None


def test_phases_start_where_the_fault_acted_on_the_traffic() -> None:
    # The fault's first command reached the node 80 ms after the harness stamped it (Docker):
    # traffic stopped at 10.08, fe got the DELETE at 10.081.
    sa = [event(10.081, "ike", False), event(11.09, "child", True)]
    phases = breakdown(10.0, 10.08, 11.11, sa, [], "be2")
    assert phases.detection == pytest.approx(0.001)
    assert phases.total() == pytest.approx(11.11 - 10.08)
    # An answer in flight that arrived after the DELETE never makes a phase negative.
    late = breakdown(10.0, 10.09, 11.11, sa, [], "be2")
    assert late.detection == 0.0 and late.total() == pytest.approx(11.11 - 10.09)


def test_an_event_that_arrives_after_the_first_answer_still_counts() -> None:
    # Through Docker's exec relay, the child-up event reached the harness 30 ms after the probe
    # on fe saw the first answer of the new SA.
    sa = [event(10.005, "ike", False), event(11.05, "child", True)]
    phases = breakdown(10.0, 10.0, 11.02, sa, [], "be2")
    assert phases.negotiation is not None and phases.data == 0.0
    assert phases.total() == pytest.approx(1.02)


def test_retransmission_gaps_per_request_from_charon_s_log() -> None:
    """charon numbers the retransmissions of each request from 1: the gap after retransmission n
    is the timeout it ran with for try n (here a limit of 2 s), a new 1 starts a new request."""
    lines = [
        "100.000 05[IKE] sending DPD request",
        "101.000 05[IKE] retransmit 1 of request with message ID 7",
        "103.000 05[IKE] retransmit 2 of request with message ID 7",
        "105.001 05[IKE] retransmit 3 of request with message ID 7",
        "110.000 05[IKE] retransmit 1 of request with message ID 0",
        "111.000 05[IKE] retransmit 2 of request with message ID 0",
        "120.000 05[IKE] sending retransmit 1 of request message ID 0, seq 1",
    ]
    events = parse_log("\n".join(lines), 0.0, since=0.0)
    assert retransmission_gaps(events) == [[2.0, 2.001], [1.0]]


def test_only_the_vip_connection_s_lines_count() -> None:
    """charon names the IKE SA of each line (ike_name = yes); fe's SA with dc sends DPDs of its own
    while the probes keep the VIP's SA busy: they are not part of the failover."""
    lines = "\n".join(
        [
            "1000.100 08[IKE] <dc|2> sending DPD request",
            "1000.200 08[IKE] <vip|1> sending DPD request",
            "1000.300 08[CFG] vici client 4 connected",
            "1001.200 13[IKE] <vip|1> retransmit 1 of request with message ID 2",
        ]
    )
    events = parse_log(lines, WALL_TO_MONO, since=0.0, connection="vip")
    assert [(e.kind, e.connection, round(e.t, 3)) for e in events] == [
        ("dpd", "vip", 100.2),
        ("retransmit", "vip", 101.2),
    ]
    assert len(parse_log(lines, WALL_TO_MONO, since=0.0)) == 3  # every connection when none is named
