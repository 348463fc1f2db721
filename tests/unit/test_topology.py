"""Lab descriptions: addresses from 198.18.0.0/15 only, distinct per lab."""

import ipaddress

import pytest

from harness.errors import UsageError
from harness.topology import (
    BACKENDS,
    DOMAIN_CONTROLLER,
    FIRST_OWNER,
    FRONT_END,
    HOST_NUMBERS,
    LAB_NETWORK,
    MAX_LABS,
    NODES,
    STAND_INS,
    VIP_PEER,
    Placement,
    Topology,
    role_of,
)


def test_addresses_stay_in_the_benchmarking_range() -> None:
    for index in (0, 1, MAX_LABS - 1):
        topology = Topology.for_index(index)
        for address in [topology.address(n) for n in NODES] + [topology.vip]:
            assert ipaddress.IPv4Address(address) in LAB_NETWORK


def test_labs_side_by_side_have_distinct_names_and_subnets() -> None:
    labs = [Topology.for_index(i) for i in range(MAX_LABS)]
    assert len({lab.subnet for lab in labs}) == MAX_LABS
    assert len({lab.qualified for lab in labs}) == MAX_LABS
    assert all(not lab.subnet.overlaps(ipaddress.IPv4Network("198.19.0.0/16")) for lab in labs)


def test_namespace_names_fit_the_kernel_limit() -> None:
    assert len(f"{Topology.for_index(MAX_LABS - 1).qualified}-be2") <= 15


def test_every_node_and_the_vip_have_an_identity() -> None:
    topology = Topology.for_index(0)
    identities = {topology.identity(n) for n in ("fe", "be1", "be2", "dc", "vip")}
    assert len(identities) == 5 and all(i.endswith(".lab0.failover-lab.test") for i in identities)
    assert Topology.other_backend("be1") == "be2" and Topology.other_backend("be2") == "be1"


@pytest.mark.parametrize(("name", "index"), [("Lab", 0), ("x" * 9, 0), ("lab0", MAX_LABS), ("lab0", -1)])
def test_check_rejects_bad_descriptions(name: str, index: int) -> None:
    with pytest.raises(UsageError):
        Topology(name, index).check()


def test_every_node_has_one_role() -> None:
    assert NODES == ("fe", "be1", "be2", "dc")  # the order every loop over the lab's nodes takes
    assert [role_of(n) for n in NODES] == ["front-end", "back-end", "back-end", "domain-controller"]
    assert (FRONT_END, BACKENDS, DOMAIN_CONTROLLER, FIRST_OWNER) == ("fe", ("be1", "be2"), "dc", "be1")
    assert set(HOST_NUMBERS) == set(NODES)
    stand_ins = {n: STAND_INS.get(role_of(n)) for n in NODES}
    assert stand_ins == {"fe": None, "be1": "backend", "be2": "backend", "dc": "dc"}
    with pytest.raises(KeyError):
        role_of(VIP_PEER)  # the back-end pair as one peer is no node


def test_placed_addresses_must_lie_in_their_own_subnet() -> None:
    addresses = tuple((node, f"10.9.0.{number}") for node, number in HOST_NUMBERS.items())
    placed = Topology("lab0", 0, Placement(ipaddress.IPv4Network("10.9.0.0/24"), "10.9.0.100", addresses))
    placed.check()
    assert placed.address(DOMAIN_CONTROLLER) == "10.9.0.20"
    outside = Placement(ipaddress.IPv4Network("10.9.0.0/24"), "10.9.1.100", addresses)
    with pytest.raises(UsageError, match=r"addresses must lie in 10\.9\.0\.0/24"):
        Topology("lab0", 0, outside).check()
