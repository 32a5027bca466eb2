"""Configuration loading: a valid file loads; every mistake names file, line and key path."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from observatory.config import (
    ConfigError,
    load_config,
    parse_config,
    parse_duration,
    resolve_basic_auth,
    resolve_headers,
)

VALID = """\
# Observatory test configuration
store: lake-data
collection:
  step: 30s
  chunk: 2h
  lookback: 2d
  counter_lookback: 10m
health:
  max_error_ratio: 0.02
regions:
  - name: eu-west
    display_name: Frankfurt
    url: http://prom-eu.example:9090
    latitude: 50.11
    longitude: 8.68
    presets: [vllm, dcgm]
    labels:
      model: served_model
    headers:
      X-Static: "yes"
    headers_env:
      X-Scope-OrgID: EU_TENANT
    auth:
      bearer_token_env: EU_TOKEN
  - name: us-east
    url: https://prom-us.example/prometheus
    latitude: 39.0
    longitude: -77.5
    presets: [prometheus]
    auth:
      basic:
        username: observer
        password_env: US_PASSWORD
    verify_tls: false
"""


def _write(tmp_path: Path, text: str, name: str = "observatory.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line of the ``occurrence``-th line containing ``needle``."""
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    return hits[occurrence - 1]


def _error(tmp_path: Path, text: str) -> str:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


# --------------------------------------------------------------------------- valid


def test_valid_config_loads_with_values_and_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID)
    config = load_config(path)
    s = config.settings
    assert config.path == path.resolve()
    assert config.store_path == path.resolve().parent / "lake-data"
    assert s.collection.step == timedelta(seconds=30)
    assert s.collection.chunk == timedelta(hours=2)
    assert s.collection.lookback == timedelta(days=2)
    assert s.collection.counter_lookback == timedelta(minutes=10)
    assert s.collection.settle == timedelta(seconds=60)  # default
    assert s.health.max_error_ratio == 0.02
    assert s.health.max_p99_seconds == 20.0  # default
    eu, us = s.regions
    assert (eu.name, eu.title, eu.latitude, eu.longitude) == ("eu-west", "Frankfurt", 50.11, 8.68)
    assert eu.presets == ["vllm", "dcgm"]
    assert eu.labels.model == ["served_model"]  # a single string becomes a list
    assert eu.labels.arm == ["version", "model_version", "arm"]  # default
    assert eu.auth is not None and eu.auth.bearer_token_env == "EU_TOKEN"
    assert us.title == "us-east"
    assert us.verify_tls is False
    assert us.auth is not None and us.auth.basic is not None
    assert us.auth.basic.username == "observer"


def test_default_presets_and_absolute_store(tmp_path: Path) -> None:
    region = "{name: a, url: 'http://a', latitude: 0, longitude: 0}"
    text = f"store: {tmp_path / 'abs'}\nregions:\n  - {region}\n"
    config = load_config(_write(tmp_path, text))
    assert config.store_path == tmp_path / "abs"
    assert config.settings.regions[0].presets == ["vllm", "dcgm"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("5m", 300),
        ("6h", 21600),
        ("14d", 1_209_600),
        ("2w", 1_209_600),
        ("250ms", 0.25),
        (45, 45),
    ],
)
def test_parse_duration(text: str | int, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("bad", ["5x", "m5", "", "0s", -3, True, None, "1.5.0h"])
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


# --------------------------------------------------------------------------- mistakes


def test_unknown_top_level_key(tmp_path: Path) -> None:
    text = VALID.replace("health:", "colection:\n  step: 1m\nhealth:")
    msg = _error(tmp_path, text)
    assert "observatory.yaml:" in msg
    assert f":{_line_of(text, 'colection:')}: colection: unknown key" in msg


def test_unknown_key_inside_second_region(tmp_path: Path) -> None:
    text = VALID.replace("    latitude: 39.0", "    lattitude: 39.0\n    latitude: 39.0")
    msg = _error(tmp_path, text)
    assert (
        f"observatory.yaml:{_line_of(text, 'lattitude')}: regions[1].lattitude: unknown key" in msg
    )


def test_wrong_type_latitude(tmp_path: Path) -> None:
    text = VALID.replace("latitude: 39.0", 'latitude: "north"')
    msg = _error(tmp_path, text)
    assert f"observatory.yaml:{_line_of(text, 'north')}: regions[1].latitude:" in msg
    assert "valid number" in msg


def test_latitude_out_of_range(tmp_path: Path) -> None:
    text = VALID.replace("latitude: 50.11", "latitude: 95.5")
    msg = _error(tmp_path, text)
    assert f"observatory.yaml:{_line_of(text, 'latitude: 95.5')}: regions[0].latitude:" in msg
    assert "less than or equal to 90" in msg


def test_missing_url_points_at_the_region(tmp_path: Path) -> None:
    text = VALID.replace("    url: https://prom-us.example/prometheus\n", "")
    msg = _error(tmp_path, text)
    # the key is absent: the line is the region's first line
    line = _line_of(text, "name: us-east")
    assert f"observatory.yaml:{line}: regions[1].url: required key is missing" in msg


def test_bad_duration(tmp_path: Path) -> None:
    text = VALID.replace("step: 30s", "step: 5x")
    msg = _error(tmp_path, text)
    assert f"observatory.yaml:{_line_of(text, 'step: 5x')}: collection.step:" in msg
    assert "'5x'" in msg


def test_chunk_not_a_multiple_of_step(tmp_path: Path) -> None:
    text = VALID.replace("chunk: 2h", "chunk: 45s")
    msg = _error(tmp_path, text)
    assert f"observatory.yaml:{_line_of(text, 'chunk: 45s')}: collection.chunk:" in msg
    assert "multiple of step" in msg


def test_fractional_step(tmp_path: Path) -> None:
    text = VALID.replace("step: 30s", "step: 1500ms")
    msg = _error(tmp_path, text)
    assert f"observatory.yaml:{_line_of(text, 'step: 1500ms')}: collection.step:" in msg
    assert "whole number of seconds" in msg


def test_duplicate_region_names(tmp_path: Path) -> None:
    text = VALID.replace("name: us-east", "name: eu-west")
    msg = _error(tmp_path, text)
    line = _line_of(text, "name: eu-west", occurrence=2)
    assert f"observatory.yaml:{line}: regions[1].name:" in msg
    assert "'eu-west' appears twice" in msg


def test_both_basic_and_bearer_auth(tmp_path: Path) -> None:
    text = VALID.replace(
        "      bearer_token_env: EU_TOKEN",
        "      bearer_token_env: EU_TOKEN\n      basic: {username: u, password_env: P}",
    )
    msg = _error(tmp_path, text)
    assert f"observatory.yaml:{_line_of(text, 'auth:')}: regions[0].auth:" in msg
    assert "not both" in msg


def test_invalid_yaml_syntax(tmp_path: Path) -> None:
    text = VALID.replace("longitude: -77.5", "longitude: -77.5: oops")
    msg = _error(tmp_path, text)
    assert f"observatory.yaml:{_line_of(text, 'oops')}: invalid YAML" in msg


def test_unclosed_quote_is_reported_where_it_opens(tmp_path: Path) -> None:
    # PyYAML finds the problem at the end of the stream, past the file's last line; the
    # message names the line where the quoted scalar starts instead.
    text = VALID.replace("longitude: -77.5", 'longitude: "-77.5')
    msg = _error(tmp_path, text)
    line = _line_of(text, '"-77.5')
    assert f"observatory.yaml:{line}: invalid YAML: found unexpected end of stream" in msg
    assert f"while scanning a quoted scalar at line {line}" in msg
    assert line < len(text.splitlines())


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    msg = _error(tmp_path, text)
    assert "observatory.yaml" in msg
    assert "empty" in msg


def test_top_level_not_a_mapping(tmp_path: Path) -> None:
    msg = _error(tmp_path, "- name: a\n")
    assert "observatory.yaml:1: expected a mapping" in msg


def test_bad_preset_name(tmp_path: Path) -> None:
    text = VALID.replace("presets: [prometheus]", "presets: [prometheus, dcmg]")
    msg = _error(tmp_path, text)
    assert f"observatory.yaml:{_line_of(text, 'dcmg')}: regions[1].presets[1]:" in msg
    assert "'dcmg'" in msg


def test_no_regions(tmp_path: Path) -> None:
    msg = _error(tmp_path, "store: x\nregions: []\n")
    assert "observatory.yaml:2: regions:" in msg


def test_several_mistakes_are_all_reported(tmp_path: Path) -> None:
    text = VALID.replace("latitude: 39.0", "latitude: -91").replace(
        "longitude: 8.68", "longitude: 181"
    )
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert len(info.value.messages) == 2
    joined = str(info.value)
    assert f":{_line_of(text, 'longitude: 181')}: regions[0].longitude:" in joined
    assert f":{_line_of(text, 'latitude: -91')}: regions[1].latitude:" in joined


def test_missing_config_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert "cannot read" in str(info.value)


def test_parse_config_names_its_source() -> None:
    with pytest.raises(ConfigError, match=r"^inline\.yaml:3: regions\[0\]\.url"):
        parse_config(
            "regions:\n  - name: a\n    url: ftp://a\n    latitude: 0\n    longitude: 0\n",
            "inline.yaml",
        )


# --------------------------------------------------------------------------- secrets


def _regions(tmp_path: Path):
    return load_config(_write(tmp_path, VALID)).settings.regions


def test_resolve_headers_reads_secrets_from_the_environment(tmp_path: Path) -> None:
    eu, us = _regions(tmp_path)
    env = {"EU_TENANT": "tenant-7", "EU_TOKEN": "s3cret"}
    assert resolve_headers(eu, env) == {
        "X-Static": "yes",
        "X-Scope-OrgID": "tenant-7",
        "Authorization": "Bearer s3cret",
    }
    assert resolve_headers(us, {}) == {}


def test_resolve_headers_names_region_and_variables_when_missing(tmp_path: Path) -> None:
    eu, _ = _regions(tmp_path)
    with pytest.raises(ConfigError) as info:
        resolve_headers(eu, {"EU_TENANT": "t"})
    assert info.value.messages == ["region eu-west: auth.bearer_token_env: $EU_TOKEN is not set"]
    with pytest.raises(ConfigError) as info:
        resolve_headers(eu, {})
    text = str(info.value)
    assert "region eu-west" in text
    assert "$EU_TENANT" in text
    assert "$EU_TOKEN" in text
    assert len(info.value.messages) == 2


def test_resolve_headers_defaults_to_os_environ(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    eu, _ = _regions(tmp_path)
    monkeypatch.setenv("EU_TENANT", "from-env")
    monkeypatch.setenv("EU_TOKEN", "tok")
    assert resolve_headers(eu)["X-Scope-OrgID"] == "from-env"
    monkeypatch.delenv("EU_TOKEN")
    with pytest.raises(ConfigError, match=r"EU_TOKEN"):
        resolve_headers(eu)


def test_resolve_basic_auth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    eu, us = _regions(tmp_path)
    assert resolve_basic_auth(eu, {}) is None  # bearer, not basic
    assert resolve_basic_auth(us, {"US_PASSWORD": "pw"}) == ("observer", "pw")
    with pytest.raises(ConfigError) as info:
        resolve_basic_auth(us, {})
    assert "region us-east" in str(info.value)
    assert "$US_PASSWORD" in str(info.value)
    monkeypatch.setenv("US_PASSWORD", "pw2")
    assert resolve_basic_auth(us) == ("observer", "pw2")
    monkeypatch.delenv("US_PASSWORD")
    with pytest.raises(ConfigError, match="US_PASSWORD"):
        resolve_basic_auth(us)


def test_every_preset_can_be_named_in_the_config() -> None:
    """The config's preset names and collectors.presets must not drift apart (the
    ``labels`` preset once existed in the collector but was refused by the config)."""
    from typing import get_args

    from collectors.presets import PRESETS
    from observatory.config import PresetName

    assert set(get_args(PresetName)) == set(PRESETS)


def test_refetch_names_a_known_signal(tmp_path: Path) -> None:
    """A misspelled late-data signal is refused where it is written, not ignored."""
    from observatory.config import ConfigError, load_config

    path = _write(
        tmp_path,
        "collection:\n  refetch: {acuracy: 6h}\nregions:\n  - name: us-east-1\n"
        "    url: http://127.0.0.1:9\n    latitude: 1\n    longitude: 1\n    presets: [quality]\n",
    )
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    (message,) = exc.value.messages
    assert message.startswith(f"{path}:2: collection.refetch.acuracy: unknown signal 'acuracy'")
    assert "accuracy" in message


def test_demo_refuses_days_that_are_not_a_finite_positive_number() -> None:
    from click.testing import CliRunner

    from observatory.cli import main

    for days in ("inf", "nan", "0", "-1"):
        res = CliRunner().invoke(main, ["demo", "--store", "/nonexistent/x", "--days", days])
        assert res.exit_code == 2 and "--days" in res.output, (days, res.output)
