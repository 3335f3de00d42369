"""The SSRF guard's policy (scheduled_db.policy.ssrf), its config keys, and the numeric host
forms validation refuses: plain function calls."""

from __future__ import annotations

import ipaddress

import pytest

from scheduled_db.config.loading import ConfigError, load_config
from scheduled_db.errors import ValidationError
from scheduled_db.jobs.validation import parse_job_spec
from scheduled_db.policy import ssrf
from scheduled_db.policy.ssrf import DENY, AddressPolicy

NOW_MS = 1_800_000_000_000


def ip(text: str) -> ssrf.IPAddress:
    return ipaddress.ip_address(text)


def nets(*texts: str) -> tuple[ssrf.IPNetwork, ...]:
    return tuple(ipaddress.ip_network(t) for t in texts)


REFUSED_BY_DEFAULT = [
    # IPv4
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.0.0.1", "private"),
    ("10.255.255.255", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "private"),  # carrier-grade NAT
    ("100.127.255.254", "private"),
    ("169.254.169.254", "link-local"),  # cloud metadata
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("255.255.255.255", "reserved"),
    ("240.0.0.1", "reserved"),
    ("192.0.2.10", "reserved"),  # documentation
    ("198.18.0.1", "reserved"),  # benchmarking
    # IPv6
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),  # with a zone, as a resolver may answer
    ("fd00::1", "private"),
    ("fc00::1", "private"),
    ("fec0::1", "private"),  # site-local: ipaddress calls it global
    ("ff02::1", "multicast"),
    ("ff0e::1", "multicast"),
    ("2001:db8::1", "reserved"),
    ("2001::1", "reserved"),  # Teredo
    ("100::1", "reserved"),
    ("::127.0.0.1", "reserved"),  # IPv4-compatible (deprecated)
    # IPv6 that reaches an IPv4 address: judged by that address
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:7f00:1", "loopback"),
    ("::ffff:169.254.169.254", "link-local"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:0.0.0.0", "unspecified"),
    ("64:ff9b::7f00:1", "loopback"),  # NAT64 to 127.0.0.1
    ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 to 169.254.169.254
    ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
    ("2002:a00:1::1", "private"),  # 6to4 of 10.0.0.1
]

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.215.14",
    "100.63.255.255",  # just below CGNAT
    "100.128.0.0",  # just above
    "172.15.255.255",
    "172.32.0.0",
    "2001:4860:4860::8888",
    "2606:4700:4700::1111",
    "::ffff:8.8.8.8",  # mapped, public inside
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8: IPv6-only clusters reach IPv4 receivers so
    "2002:808:808::1",  # 6to4 of 8.8.8.8
]


@pytest.mark.parametrize(("address", "category"), REFUSED_BY_DEFAULT)
def test_the_default_refuses_what_is_not_public_and_says_which_class(
    address: str, category: str
) -> None:
    assert DENY.refusal(ip(address)) == category
    assert ssrf.address_class(ip(address)) == category
    assert DENY.refusal_of(address) == category


@pytest.mark.parametrize("address", PUBLIC)
def test_the_default_admits_public_addresses(address: str) -> None:
    assert DENY.refusal(ip(address)) is None
    assert DENY.refusal_of(address) is None


def test_text_that_is_no_address_is_refused() -> None:
    assert DENY.refusal_of("example.com") == "reserved"
    assert AddressPolicy(allow_networks=nets("0.0.0.0/0")).refusal_of("") == "reserved"


def test_allow_networks_opens_exactly_its_networks() -> None:
    policy = AddressPolicy(allow_networks=nets("10.1.0.0/16", "fd12:3456::/32"))
    assert policy.refusal(ip("10.1.0.1")) is None
    assert policy.refusal(ip("10.1.255.255")) is None
    assert policy.refusal(ip("10.2.0.1")) == "private"  # the rest of 10/8 stays shut
    assert policy.refusal(ip("10.0.255.255")) == "private"
    assert policy.refusal(ip("127.0.0.1")) == "loopback"
    assert policy.refusal(ip("169.254.169.254")) == "link-local"
    assert policy.refusal(ip("fd12:3456::1")) is None
    assert policy.refusal(ip("fd12:3457::1")) == "private"
    assert policy.refusal(ip("8.8.8.8")) is None  # public stays open


def test_allow_networks_covers_the_ipv6_forms_of_an_allowed_ipv4_address() -> None:
    policy = AddressPolicy(allow_networks=nets("127.0.0.0/8"))
    assert policy.refusal(ip("127.0.0.1")) is None
    assert policy.refusal(ip("::ffff:127.0.0.1")) is None
    assert policy.refusal(ip("64:ff9b::7f00:1")) is None
    assert policy.refusal(ip("::1")) == "loopback"  # IPv6 loopback is another network


def test_a_single_address_can_be_allowed() -> None:
    policy = AddressPolicy(allow_networks=nets("169.254.10.20/32", "fe80::1/128"))
    assert policy.refusal(ip("169.254.10.20")) is None
    assert policy.refusal(ip("169.254.10.21")) == "link-local"
    assert policy.refusal(ip("fe80::1%eth0")) is None
    assert policy.refusal(ip("fe80::2")) == "link-local"


@pytest.mark.parametrize(("address", "category"), REFUSED_BY_DEFAULT)
def test_allow_private_admits_everything(address: str, category: str) -> None:
    policy = AddressPolicy(allow_private=True)
    assert policy.open and not DENY.open
    assert policy.refusal(ip(address)) is None


def test_host_addresses_reads_literals_and_localhost_names_without_a_resolver() -> None:
    assert ssrf.host_addresses("127.0.0.1") == (ip("127.0.0.1"),)
    assert ssrf.host_addresses("::ffff:127.0.0.1") == (ip("::ffff:127.0.0.1"),)
    loopbacks = (ip("127.0.0.1"), ip("::1"))
    for name in ("localhost", "LOCALHOST", "localhost.", "api.localhost", "a.b.localhost."):
        assert ssrf.host_addresses(name) == loopbacks, name
    for name in ("example.com", "localhost.example.com", "notlocalhost", "hooks.test"):
        assert ssrf.host_addresses(name) is None, name


def test_first_refusal_finds_a_refused_address_among_public_ones() -> None:
    addresses = (ip("8.8.8.8"), ip("10.0.0.1"), ip("::1"))
    assert ssrf.first_refusal(DENY, addresses) == "private"
    assert ssrf.first_refusal(DENY, addresses[:1]) is None
    assert ssrf.first_refusal(DENY, ()) is None


def test_refusal_messages_name_the_class_and_the_keys() -> None:
    literal = ssrf.creation_refusal_message("loopback", resolved=False)
    resolved = ssrf.creation_refusal_message("unspecified", resolved=True)
    assert literal.startswith("points to a loopback address")
    assert resolved.startswith("resolves to an unspecified address")
    for text in (literal, resolved):
        assert "webhooks.allow_networks" in text and "webhooks.allow_private" in text


def test_dial_refusals_name_the_urls_host_and_never_a_resolved_address() -> None:
    assert ssrf.dial_refusal_message("169.254.169.254", "link-local") == (
        "address not allowed: 169.254.169.254 is a link-local address (see webhooks.allow_networks)"
    )
    assert ssrf.dial_refusal_message("::", "unspecified").startswith(
        "address not allowed: :: is an unspecified address"
    )
    assert ssrf.dial_refusal_message("hooks.test", "private") == (
        "address not allowed: hooks.test resolves only to private addresses "
        "(see webhooks.allow_networks)"
    )


# --- the config keys -----------------------------------------------------------------


def test_the_default_config_is_the_deny_policy() -> None:
    config = load_config({}, {}, None, "defaults")
    assert config.webhooks.address_policy == DENY


def test_the_keys_from_env_yaml_and_flags() -> None:
    env = {"WEBHOOK_ALLOW_NETWORKS": "10.1.0.0/16, fd00::/8", "WEBHOOK_ALLOW_PRIVATE": "false"}
    policy = load_config({}, env, None, "t").webhooks.address_policy
    assert policy == AddressPolicy(False, nets("10.1.0.0/16", "fd00::/8"))
    text = "webhooks:\n  allow_private: true\n  allow_networks: [192.168.0.0/16, 10.0.0.5]\n"
    policy = load_config({}, {}, text, "f.yaml").webhooks.address_policy
    assert policy == AddressPolicy(True, nets("192.168.0.0/16", "10.0.0.5/32"))
    flags = {"webhooks.allow_networks": "127.0.0.0/8", "webhooks.allow_private": "yes"}
    policy = load_config(flags, {}, None, "t").webhooks.address_policy
    assert policy == AddressPolicy(True, nets("127.0.0.0/8"))


@pytest.mark.parametrize("bad", ["10.0.0.1/8", "not-a-network", "10.0.0.0/33", "fd00::/129"])
def test_a_bad_cidr_stops_start_up_naming_the_key_and_the_item(bad: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({}, {"WEBHOOK_ALLOW_NETWORKS": f"10.0.0.0/8,{bad}"}, None, "t")
    line = str(caught.value)
    assert "\n" not in line
    assert line.startswith("config: webhooks.allow_networks: must be CIDR networks")
    assert f'got "{bad}" from env WEBHOOK_ALLOW_NETWORKS' in line


def test_a_bad_allow_private_stops_start_up_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"^config: webhooks\.allow_private: must be a boolean"):
        load_config({}, {}, "webhooks:\n  allow_private: sometimes\n", "f.yaml")


# --- numeric host forms -----------------------------------------------------------------


def create_with(url: str) -> None:
    body = {"type": "unico", "timestamp": NOW_MS // 1000 + 60, "webhook_url": url}
    parse_job_spec(body, NOW_MS, generated_id="g")


@pytest.mark.parametrize(
    "host",
    ["2130706433", "0x7f000001", "0x7f.1", "0177.0.0.1", "127.1", "127.0.1", "127.0.0.01",
     "0X7F.0.0.1", "127.0.0.1.", "1.2.3.4.5", "0x"],
)  # fmt: skip
def test_numeric_hosts_other_than_a_dotted_quad_are_invalid(host: str) -> None:
    """Resolvers read these as IPv4 addresses (most of them as 127.0.0.1)."""
    with pytest.raises(ValidationError) as caught:
        create_with(f"http://{host}:8080/hook")
    assert caught.value.field == "webhook_url"
    assert "a.b.c.d" in caught.value.message


@pytest.mark.parametrize(
    "url",
    ["http://8.8.8.8/h", "http://[2001:db8::1]:8443/h", "https://123.example/h",
     "https://a1.0x1/h", "https://0x.example.com/h"],
)  # fmt: skip
def test_names_with_numeric_labels_and_canonical_literals_stay_valid(url: str) -> None:
    create_with(url)
