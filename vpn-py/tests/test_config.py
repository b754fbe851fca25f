"""vpn.Config: the connection configuration binding."""

from __future__ import annotations

import json
import pathlib
import re

import pytest

import vpn

REPO = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = REPO / "vpn-core" / "tests" / "fixtures" / "config"
XML_PATH = FIXTURES / "aws-vpn-connection-bgp.xml"
OPTIONS_PATH = FIXTURES / "aws-describe-vpn-connections.json"
TOML_PATH = REPO / "examples" / "connection.toml"

PSK1 = "Qx7vN2mPa9Lr4TzWk8Hc3Ye6Bd5Fg1Js"
PSK2 = "Ur5kD8sVb2Nq7Xw4Em9Tj6Pc3Ha1Lz0G"
EXAMPLE_PSKS = ("example_psk.tunnel1", "example_psk.tunnel2")


@pytest.fixture
def aws() -> vpn.Config:
    return vpn.Config.from_aws_xml(XML_PATH.read_text())


@pytest.fixture
def example() -> vpn.Config:
    return vpn.Config.from_toml(TOML_PATH.read_text())


def static_json(cfg: vpn.Config) -> str:
    data = json.loads(cfg.to_json())
    data["routing"] = {"type": "static", "prefixes": ["10.0.0.0/16"]}
    return json.dumps(data)


def error_text(exc: BaseException) -> str:
    """Everything an exception exposes as text."""
    return " ".join([str(exc), repr(exc), repr(getattr(exc, "errors", None)),
                     repr(getattr(exc, "field", None))])


# --- import and properties -------------------------------------------------


def test_aws_fixture_properties(aws: vpn.Config) -> None:
    aws.validate()
    assert aws.name == "vpn-0a1b2c3d4e5f60718"
    assert aws.role == "cgw"
    assert aws.routing == "bgp"
    assert aws.local_asn == 65010
    assert aws.peer_asn == 64512
    assert aws.outside_addresses == [
        ("203.0.113.10", "198.51.100.21"),
        ("203.0.113.10", "198.51.100.87"),
    ]
    assert aws.inside_cidrs == ["169.254.44.40/30", "169.254.201.136/30"]


def test_example_toml_properties(example: vpn.Config) -> None:
    example.validate()
    assert example.name == "example-vpn"
    assert example.role == "cgw"
    assert example.routing == "bgp"
    assert len(example.outside_addresses) == 2
    assert all(isinstance(a, str) and isinstance(b, str) for a, b in example.outside_addresses)


def test_static_routing(aws: vpn.Config) -> None:
    cfg = vpn.Config.from_json(static_json(aws))
    cfg.validate()
    assert cfg.routing == "static"
    assert cfg.local_asn is None and cfg.peer_asn is None
    assert cfg.to_bird() is None


def test_from_file_by_extension(tmp_path: pathlib.Path, aws: vpn.Config) -> None:
    assert vpn.Config.from_file(XML_PATH) == aws
    assert vpn.Config.from_file(str(XML_PATH)) == aws
    assert vpn.Config.from_file(TOML_PATH).name == "example-vpn"
    (tmp_path / "c.json").write_text(aws.to_json())
    (tmp_path / "c.TOML").write_text(aws.to_toml())
    assert vpn.Config.from_file(tmp_path / "c.json") == aws
    assert vpn.Config.from_file(tmp_path / "c.TOML") == aws
    (tmp_path / "c.txt").write_text(aws.to_toml())
    with pytest.raises(vpn.ConfigError, match="extension|format") as info:
        vpn.Config.from_file(tmp_path / "c.txt")
    assert info.value.field is None
    with pytest.raises(FileNotFoundError):
        vpn.Config.from_file(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_bytes(b"name = \"\xff\"")
    with pytest.raises(vpn.ConfigError, match="UTF-8"):
        vpn.Config.from_file(tmp_path / "bad.toml")


# --- exports -----------------------------------------------------------------


def test_exports(aws: vpn.Config) -> None:
    swanctl = aws.to_swanctl()
    assert "version = 1" in swanctl and "secrets" in swanctl
    assert PSK1 in swanctl and PSK2 in swanctl
    bird = aws.to_bird()
    assert bird is not None and "protocol bgp tunnel1" in bird
    summary = aws.summary()
    assert "<redacted>" in summary
    assert PSK1 not in summary and PSK2 not in summary
    shown = aws.summary(show_secrets=True)
    assert PSK1 in shown and PSK2 in shown


def test_to_dict(aws: vpn.Config) -> None:
    data = aws.to_dict()
    assert data["name"] == aws.name
    assert data["routing"]["type"] == "bgp"
    assert [t["psk"] for t in data["tunnels"]] == ["<redacted>", "<redacted>"]
    assert PSK1 not in repr(data) and PSK2 not in repr(data)
    secret = aws.to_dict(show_secrets=True)
    assert [t["psk"] for t in secret["tunnels"]] == [PSK1, PSK2]
    assert secret == json.loads(aws.to_json())


def test_round_trips(aws: vpn.Config, example: vpn.Config) -> None:
    for cfg in (aws, example):
        assert vpn.Config.from_toml(cfg.to_toml()) == cfg
        assert vpn.Config.from_json(cfg.to_json()) == cfg
        assert vpn.Config.from_json(cfg.to_json().encode()) == cfg
        assert vpn.Config.from_toml(vpn.Config.from_json(cfg.to_json()).to_toml()).to_json() == cfg.to_json()
    assert aws != example


def test_merge_tunnel_options(aws: vpn.Config) -> None:
    before = aws.to_json()
    aws.merge_aws_tunnel_options(OPTIONS_PATH.read_text())
    aws.validate()
    assert aws.to_json() != before
    assert "14400" in aws.to_json()


def test_merge_is_all_or_nothing(aws: vpn.Config) -> None:
    before = aws.to_json()
    partial = json.dumps([
        {"OutsideIpAddress": "198.51.100.21", "Phase1LifetimeSeconds": 14400},
        {"OutsideIpAddress": "192.0.2.99"},
    ])
    with pytest.raises(vpn.ConfigError) as info:
        aws.merge_aws_tunnel_options(partial)
    assert info.value.field == "TunnelOptions[1].OutsideIpAddress"
    assert aws.to_json() == before
    with pytest.raises(vpn.ConfigError) as info:
        aws.merge_aws_tunnel_options("{}")
    assert info.value.field == "TunnelOptions"
    assert info.value.errors == [("TunnelOptions", "missing")]


# --- validation --------------------------------------------------------------


def broken_example() -> vpn.Config:
    text = (TOML_PATH.read_text()
            .replace("local_asn = 65010", "local_asn = 23456")
            .replace("example_psk.tunnel2", "0secret_psk_value")
            .replace("mtu = 1436", "mtu = 100"))
    return vpn.Config.from_toml(text)


def test_validation_errors_name_their_fields() -> None:
    cfg = broken_example()
    with pytest.raises(vpn.ConfigError) as info:
        cfg.validate()
    err = info.value
    assert isinstance(err, vpn.VpnError) and isinstance(err, ValueError)
    fields = [f for f, _ in err.errors]
    for expected in ("routing.local_asn", "tunnels[1].psk", "mtu"):
        assert expected in fields
    assert err.field == fields[0]
    for field, message in err.errors:
        assert isinstance(message, str) and message
        assert f"{field}: {message}" in str(err)
    assert len(str(err).splitlines()) == len(err.errors)


@pytest.mark.parametrize(
    "replace, field",
    [
        (("name = \"example-vpn\"", "name = \"bad name!\""), "name"),
        (("peer_asn = 64512", "peer_asn = 65010"), "routing.peer_asn"),
        (("preferred_tunnel = 0", "preferred_tunnel = 2"), "failover.preferred_tunnel"),
        (("example_psk.tunnel1", "short"), "tunnels[0].psk"),
    ],
)
def test_single_rule(replace: tuple[str, str], field: str) -> None:
    text = TOML_PATH.read_text()
    assert replace[0] in text
    cfg = vpn.Config.from_toml(text.replace(*replace))
    with pytest.raises(vpn.ConfigError) as info:
        cfg.validate()
    assert field in [f for f, _ in info.value.errors]


def test_syntax_errors_have_no_field() -> None:
    with pytest.raises(vpn.ConfigError, match="TOML error at line 2") as info:
        vpn.Config.from_toml("name = \"x\"\n[routing\n")
    assert info.value.field is None
    assert info.value.errors == [(None, str(info.value))]


# --- secrets never leak --------------------------------------------------------


def test_psk_never_in_errors_or_repr(aws: vpn.Config) -> None:
    for psk in (PSK1, PSK2):
        assert psk not in repr(aws)
        assert psk not in aws.summary()
        assert psk not in repr(aws.to_dict())
    assert "Config(" in repr(aws) and aws.name in repr(aws)

    # A key that breaks a rule is not echoed.
    cfg = broken_example()
    with pytest.raises(vpn.ConfigError) as info:
        cfg.validate()
    assert "0secret_psk_value" not in error_text(info.value)
    assert "0secret_psk_value" not in repr(cfg)

    # A key in the wrong place of a document is not echoed by the parser either.
    data = json.loads(aws.to_json())
    data["tunnels"][0]["psk"] = 12345
    data["tunnels"][1]["ike_version"] = PSK2
    with pytest.raises(vpn.ConfigError) as info:
        vpn.Config.from_json(json.dumps(data))
    assert PSK2 not in error_text(info.value)
    text, n = re.subn(r"ike_version = \d", f"ike_version = \"{PSK1}\"", aws.to_toml(), count=1)
    assert n == 1
    with pytest.raises(vpn.ConfigError) as info:
        vpn.Config.from_toml(text)
    assert PSK1 not in error_text(info.value)
    # An unusable key in AWS's XML is not echoed at import or validation.
    for bad_key in ("0" + PSK1[1:], PSK1[:10] + "!-" + PSK1[12:], PSK1 * 3):
        xml = XML_PATH.read_text().replace(PSK1, bad_key)
        with pytest.raises(vpn.ConfigError) as info:
            vpn.Config.from_aws_xml(xml).validate()
        assert bad_key not in error_text(info.value)
        assert "tunnels[0].psk" in error_text(info.value) or "pre_shared_key" in error_text(info.value)


# --- hostile input -------------------------------------------------------------


@pytest.mark.parametrize(
    "loader, text",
    [
        ("from_toml", ""),
        ("from_toml", "name = "),
        ("from_toml", "\x00\x01\x02"),
        ("from_toml", "[" * 10_000),
        ("from_json", "[" * 100_000),
        ("from_json", "{\"name\": 1e999999}"),
        ("from_json", "null"),
        ("from_aws_xml", "<vpn_connection><ipsec_tunnel>"),
        ("from_aws_xml", "<!DOCTYPE x [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]><x>&b;</x>"),
        ("from_aws_xml", "<a>" * 100_000),
        ("from_aws_xml", "\ud800"),
        ("from_toml", b"\xff\xfe"),
        ("from_toml", "#" * (2 << 20)),
    ],
)
def test_hostile_input_raises_config_error(loader: str, text: str | bytes) -> None:
    with pytest.raises(vpn.ConfigError):
        getattr(vpn.Config, loader)(text)


def test_hostile_merge(aws: vpn.Config) -> None:
    for bad in ("", "[" * 100_000, "{\"TunnelOptions\": 5}", "\ud800", b"\xff"):
        with pytest.raises(vpn.ConfigError):
            aws.merge_aws_tunnel_options(bad)
    aws.validate()


def test_wrong_argument_type() -> None:
    with pytest.raises(TypeError):
        vpn.Config.from_toml(42)  # type: ignore[arg-type]


def test_esp_config_errors_have_the_same_attributes() -> None:
    with pytest.raises(vpn.ConfigError) as info:
        vpn.EspSa(0x1000, "no-such-cipher", bytes(36))
    assert info.value.field is None
    assert info.value.errors == [(None, str(info.value))]
