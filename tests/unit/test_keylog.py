"""Keys out of a charon log (fe's, levels ike 4, chd 4, mgr 2, from a real lab run; another
thread's line interleaved) as Wireshark's decryption tables."""

from pathlib import Path

from harness import keylog

LOG = (Path(__file__).parent / "charon-keys.log").read_text()
"""fe initiated both: the IKE SA vip[1] and, in its IKE_AUTH, CHILD_SA all{2}."""


def test_an_ike_sa_s_keys_are_found_by_its_spis() -> None:
    _, (ike,), _ = keylog.read([LOG])
    assert (ike.spi_i, ike.spi_r) == ("df4112e863237824", "af0d004569a366d5")
    assert (ike.encryption, ike.integrity) == ("AES-CBC-128 [RFC3602]", "HMAC_SHA2_256_128 [RFC4868]")
    assert ike.sk_ei.hex() == "8d90b863354c38e458a1f311a15d23f8"
    assert len(ike.sk_ai) == len(ike.sk_ar) == 32
    assert ike.uat().startswith("df4112e863237824,af0d004569a366d5,8d90b863354c38e458a1f311a15d23f8,d680e266")
    assert ike.uat().count('"') == 4  # the algorithms quoted, keys and SPIs bare


def test_the_initiator_s_keys_protect_what_the_initiator_sends() -> None:
    outbound, inbound = keylog.read([LOG])[0]
    assert (outbound.spi, outbound.src, outbound.dst) == ("5e12e307", "198.18.1.10", "198.18.1.100")
    assert outbound.encryption_key.hex() == "090ad0c79d4c8ab3d5b8d099f6b8c53036c3a7b6"  # 16 bytes + the GCM salt
    assert (inbound.spi, inbound.src, inbound.dst) == ("ab06c81a", "198.18.1.100", "198.18.1.10")
    assert inbound.encryption_key.hex() == "533b54996036907d50e7fb823db6e121fe7c6ffa"
    assert outbound.uat() == (
        '"IPv4","198.18.1.10","198.18.1.100","0x5e12e307","AES-GCM with 16 octet ICV [RFC4106]",'
        '"0x090ad0c79d4c8ab3d5b8d099f6b8c53036c3a7b6","NULL",""'
    )


def test_the_responder_s_log_gives_the_same_directions() -> None:
    """The peer's log of the same exchange: it parsed the request, so its "initiator" keys are
    what it receives; the SPIs swap ends."""
    peer = (
        LOG.replace("IKE_AUTH response", "IKE_AUTH request")
        .replace("ab06c81a_i 5e12e307_o", "5e12e307_i ab06c81a_o")
        .replace("adding inbound ESP SA\n", "adding outbound ESP SA\n")
    )
    mine = {key.spi: key for key in keylog.read([LOG])[0]}
    theirs = {key.spi: key for key in keylog.read([peer])[0]}
    assert {spi: key.encryption_key for spi, key in theirs.items()} == {
        spi: key.encryption_key for spi, key in mine.items()
    }


def test_the_tables_hold_each_sa_once_and_turn_esp_decryption_on() -> None:
    tables = keylog.tables([LOG, LOG])
    assert len(tables["esp_sa"].splitlines()) == 2 and len(tables["ikev2_decryption_table"].splitlines()) == 1
    assert "esp.enable_encryption_decode: TRUE" in tables["preferences"]


def test_algorithms_wireshark_cannot_name_are_left_out() -> None:
    chacha = LOG.replace("ESP:AES_GCM_16_128", "ESP:CHACHA20_POLY1305_256").replace(
        "IKE:AES_CBC_128", "IKE:CAMELLIA_CBC_128"
    )
    assert keylog.read([chacha]) == ([], [], [])
