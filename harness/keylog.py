"""The keys of a run's SAs, read from the nodes' charon logs, as the decryption tables Wireshark
and tshark read: a run's capture decrypted, the old SA and the new one.

Debian's strongSwan has no save-keys plugin, so the lab logs the keys instead: charon at ``ike``
level 4 logs each IKE SA's keys ("Sk_ei secret => 16 bytes @ ..." and a hex dump), at ``chd``
level 4 each CHILD_SA's ("encryption initiator key"; IKEv1: "encryption key Ka" for the IKE SA),
at ``mgr`` level 2 the IKE SA's SPIs
("checkin IKEv2 SA vip[1] with SPIs ..._i ..._r"); the CHILD_SA's SPIs, its addresses and the
algorithms are logged anyway. Each key belongs to the thread that derived it (threads
interleave), and a CHILD_SA's "initiator" keys protect what the initiator of its exchange sends.
These are lab keys: the PSK is fresh per lab, every SA's keys die with it.

    esp_sa                  Wireshark's ESP SA table (uat), one line per SA and direction
    ikev2_decryption_table  Wireshark's IKEv2 table (uat), one line per IKEv2 SA
    ikev1_decryption_table  Wireshark's IKEv1 table (uat): initiator cookie and key Ka
    preferences             turns on ESP decryption (off by default in Wireshark)

``WIRESHARK_CONFIG_DIR=<that folder> tshark -r <run>.pcap`` reads them all. Algorithms
Wireshark has no name for are left out (their ESP stays encrypted in the capture); an IKE SA
rekeyed in place (not reauthenticated) is not found (its keys are derived under the old SPIs).

Owns: parsing keys out of charon logs and writing the tables. Not: the logging levels
(harness.strongswan), the capture (harness.wire).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

LINE = re.compile(r"^\S+ (?P<thread>\d+)\[(?P<group>\w+)\] (?:<[^>]*> )?(?P<text>.*)$")
DUMP_HEAD = re.compile(r"^(?P<name>[A-Za-z_ ]+?) => (?P<size>\d+) bytes @ ")
DUMP_ROW = re.compile(r"^\s*\d+: ")
PARSED = re.compile(r"^parsed \S+ (?P<kind>request|response) ")
PROPOSAL = re.compile(r"^selected proposal: (?P<protocol>IKE|ESP):(?P<algorithms>\S+)")
CHECKIN = re.compile(
    r"^checkin IKEv(?P<version>[12]) SA \S+ with SPIs (?P<spi_i>[0-9a-f]{16})_i (?P<spi_r>[0-9a-f]{16})_r"
)
CHILD_UP = re.compile(r"CHILD_SA \S+ established with SPIs (?P<inbound>[0-9a-f]{8})_i (?P<outbound>[0-9a-f]{8})_o ")
ESP_SA = re.compile(r"^\s*SPI 0x(?P<spi>[0-9a-f]{8}), src (?P<src>\S+) dst (?P<dst>\S+)")
IKE_KEYS = {
    "Sk_ei secret": "ei",
    "Sk_er secret": "er",
    "Sk_ai secret": "ai",
    "Sk_ar secret": "ar",
    "encryption key Ka": "ka",  # IKEv1: what encrypts phase 1 and quick mode
}
CHILD_KEYS = {
    "encryption initiator key": "ei",
    "encryption responder key": "er",
    "integrity initiator key": "ai",
    "integrity responder key": "ar",
}
ESP_ENCRYPTION = {
    "AES_CBC": "AES-CBC [RFC3602]",
    "AES_CTR": "AES-CTR [RFC3686]",
    "AES_GCM_8": "AES-GCM with 8 octet ICV [RFC4106]",
    "AES_GCM_12": "AES-GCM with 12 octet ICV [RFC4106]",
    "AES_GCM_16": "AES-GCM with 16 octet ICV [RFC4106]",
}
ESP_INTEGRITY = {
    "HMAC_SHA1_96": "HMAC-SHA-1-96 [RFC2404]",
    "HMAC_SHA2_256_128": "HMAC-SHA-256-128 [RFC4868]",
    "HMAC_SHA2_384_192": "HMAC-SHA-384-192 [RFC4868]",
    "HMAC_SHA2_512_256": "HMAC-SHA-512-256 [RFC4868]",
}
IKE_INTEGRITY = {
    "HMAC_SHA1_96": "HMAC_SHA1_96 [RFC2404]",
    "HMAC_SHA2_256_128": "HMAC_SHA2_256_128 [RFC4868]",
    "HMAC_SHA2_384_192": "HMAC_SHA2_384_192 [RFC4868]",
    "HMAC_SHA2_512_256": "HMAC_SHA2_512_256 [RFC4868]",
}
PREFERENCES = "esp.enable_encryption_decode: TRUE\nesp.enable_authentication_check: TRUE\n"


@dataclass(frozen=True)
class EspKey:
    """One direction of a CHILD_SA: the packets with ``spi`` from ``src`` to ``dst``."""

    spi: str
    src: str
    dst: str
    encryption: str
    encryption_key: bytes
    integrity: str
    integrity_key: bytes

    def uat(self) -> str:
        fields = ["IPv4", self.src, self.dst, f"0x{self.spi}", self.encryption, f"0x{self.encryption_key.hex()}"]
        fields += [self.integrity, f"0x{self.integrity_key.hex()}" if self.integrity_key else ""]
        return ",".join(f'"{value}"' for value in fields)


@dataclass(frozen=True)
class IkeKey:
    """One IKEv2 SA's keys, by its SPIs."""

    spi_i: str
    spi_r: str
    encryption: str
    sk_ei: bytes
    sk_er: bytes
    integrity: str
    sk_ai: bytes
    sk_ar: bytes

    def uat(self) -> str:
        return (
            f'{self.spi_i},{self.spi_r},{self.sk_ei.hex()},{self.sk_er.hex()},"{self.encryption}",'
            f'{self.sk_ai.hex()},{self.sk_ar.hex()},"{self.integrity}"'
        )


@dataclass(frozen=True)
class Ikev1Key:
    """One IKEv1 SA's encryption key, by its initiator cookie (Wireshark needs no more)."""

    cookie: str
    key: bytes

    def uat(self) -> str:
        return f"{self.cookie},{self.key.hex()}"


@dataclass
class _Thread:
    """What one charon thread derived and negotiated since its last SA."""

    dump: tuple[str, int, bytearray] | None = None
    ike: dict[str, bytes] = field(default_factory=dict)
    child: dict[str, bytes] = field(default_factory=dict)
    ike_algorithms: str = ""
    esp_algorithms: str = ""
    initiator: bool = False


def _ike_names(algorithms: str) -> tuple[str, str] | None:
    """Wireshark's names of an IKE proposal's encryption and integrity (None: it has none)."""
    parts = algorithms.split("/")
    gcm = re.fullmatch(r"AES_GCM_(8|12|16)_(128|192|256)", parts[0])
    if gcm:
        return f"AES-GCM-{gcm[2]} with {gcm[1]} octet ICV [RFC5282]", "NONE [RFC4306]"
    cbc = re.fullmatch(r"AES_CBC_(128|192|256)", parts[0])
    if cbc and len(parts) > 1 and parts[1] in IKE_INTEGRITY:
        return f"AES-CBC-{cbc[1]} [RFC3602]", IKE_INTEGRITY[parts[1]]
    return None


def _esp_names(algorithms: str) -> tuple[str, str] | None:
    """Wireshark's names of an ESP proposal's encryption and integrity (None: it has none)."""
    parts = algorithms.split("/")
    cipher = re.sub(r"_(128|192|256)$", "", parts[0])
    if cipher.startswith("AES_GCM"):
        return (ESP_ENCRYPTION[cipher], "NULL") if cipher in ESP_ENCRYPTION else None
    if cipher in ESP_ENCRYPTION and len(parts) > 1 and parts[1] in ESP_INTEGRITY:
        return ESP_ENCRYPTION[cipher], ESP_INTEGRITY[parts[1]]
    return None


class _Reader:
    def __init__(self) -> None:
        self.threads: dict[str, _Thread] = {}
        self.addresses: dict[str, tuple[str, str]] = {}
        self.esp: list[EspKey] = []
        self.ike: list[IkeKey] = []
        self.ikev1: list[Ikev1Key] = []

    def line(self, thread_id: str, text: str) -> None:
        thread = self.threads.setdefault(thread_id, _Thread())
        if thread.dump is not None and DUMP_ROW.match(text):
            _, _, data = thread.dump
            data.extend(bytes.fromhex(text.split(":", 1)[1][:49]))
            self._close_dump(thread)
            return
        thread.dump = None
        if head := DUMP_HEAD.match(text):
            thread.dump = (head["name"], int(head["size"]), bytearray())
        elif parsed := PARSED.match(text):
            thread.initiator = parsed["kind"] == "response"
        elif proposal := PROPOSAL.match(text):
            if proposal["protocol"] == "IKE":
                thread.ike_algorithms = proposal["algorithms"]
            else:
                thread.esp_algorithms = proposal["algorithms"]
        elif sa := ESP_SA.match(text):
            self.addresses[sa["spi"]] = (sa["src"], sa["dst"])
        elif checkin := CHECKIN.match(text):
            if checkin["version"] == "1":
                self._ikev1_up(thread, checkin["spi_i"])
            else:
                self._ike_up(thread, checkin["spi_i"], checkin["spi_r"])
        elif child := CHILD_UP.search(text):
            self._child_up(thread, child["inbound"], child["outbound"])

    def _close_dump(self, thread: _Thread) -> None:
        assert thread.dump is not None
        name, size, data = thread.dump
        if len(data) < size:
            return
        thread.dump = None
        if name in IKE_KEYS:
            thread.ike[IKE_KEYS[name]] = bytes(data[:size])
        elif name in CHILD_KEYS:
            thread.child[CHILD_KEYS[name]] = bytes(data[:size])

    def _ike_up(self, thread: _Thread, spi_i: str, spi_r: str) -> None:
        names = _ike_names(thread.ike_algorithms)
        keys, thread.ike = thread.ike, {}
        if names is None or "ei" not in keys or int(spi_r, 16) == 0:
            return
        empty = b""
        self.ike.append(
            IkeKey(
                spi_i, spi_r, names[0], keys["ei"], keys["er"], names[1], keys.get("ai", empty), keys.get("ar", empty)
            )
        )

    def _ikev1_up(self, thread: _Thread, cookie: str) -> None:
        key = thread.ike.pop("ka", None)
        if key is not None:
            self.ikev1.append(Ikev1Key(cookie, key))

    def _child_up(self, thread: _Thread, inbound: str, outbound: str) -> None:
        names = _esp_names(thread.esp_algorithms)
        keys, thread.child = thread.child, {}
        if names is None or "ei" not in keys:
            return
        sent, received = ("i", "r") if thread.initiator else ("r", "i")  # what this node sends with
        for spi, side in ((outbound, sent), (inbound, received)):
            src, dst = self.addresses.get(spi, ("*", "*"))
            self.esp.append(EspKey(spi, src, dst, names[0], keys[f"e{side}"], names[1], keys.get(f"a{side}", b"")))


def read(logs: Iterable[str]) -> tuple[list[EspKey], list[IkeKey], list[Ikev1Key]]:
    """Every CHILD_SA direction, IKEv2 SA and IKEv1 SA whose keys the charon logs ``logs`` show
    (each SA once, however many nodes logged it)."""
    esp: dict[str, EspKey] = {}
    ike: dict[tuple[str, str], IkeKey] = {}
    ikev1: dict[str, Ikev1Key] = {}
    for log in logs:
        reader = _Reader()
        for raw in log.splitlines():
            if line := LINE.match(raw):
                reader.line(line["thread"], line["text"])
        esp |= {key.spi: key for key in reader.esp}
        ike |= {(key.spi_i, key.spi_r): key for key in reader.ike}
        ikev1 |= {key.cookie: key for key in reader.ikev1}
    return list(esp.values()), list(ike.values()), list(ikev1.values())


def tables(logs: Iterable[str]) -> dict[str, str]:
    """The files of a Wireshark configuration folder that decrypts the run: esp_sa,
    ikev2_decryption_table, ikev1_decryption_table and preferences."""
    esp, ike, ikev1 = read(logs)
    return {
        "esp_sa": "".join(f"{key.uat()}\n" for key in esp),
        "ikev2_decryption_table": "".join(f"{key.uat()}\n" for key in ike),
        "ikev1_decryption_table": "".join(f"{key.uat()}\n" for key in ikev1),
        "preferences": PREFERENCES,
    }
