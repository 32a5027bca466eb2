"""TLS and basic auth against a real Prometheus (``--web.config.file``).

A throwaway CA, server and client certificate are made with the ``openssl`` command;
one Prometheus serves HTTPS with basic auth (a bcrypt hash in its web config), a
second one also requires a client certificate signed by the CA.  The collector's
client must: verify with the CA bundle, refuse a server signed by another CA with an
error naming the region, connect with verification switched off, present a client
certificate, and report a wrong password as a clear HTTP 401 that is not retried.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prom_harness import PromServer, missing_binaries, run_cli, write_config

from collectors.prometheus import QueryError, RegionSource
from observatory.config import Region, load_config

pytestmark = pytest.mark.integration

USER, PASSWORD = "observatory", "observatory-test-pw"
#: bcrypt of PASSWORD (cost 4: a test credential, fast to check); made with
#: ``crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))``.
PASSWORD_HASH = "$2b$04$6QGe1ZPGgV7rBTY2mw9CQuBPZ9EukNixDyCodUK1d7BMdjxibwkIa"
PASSWORD_ENV = "OBSERVATORY_TEST_PROM_PASSWORD"


def _openssl(*args: str) -> None:
    proc = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def _ca(folder: Path, name: str) -> tuple[Path, Path]:
    key, crt = folder / f"{name}.key", folder / f"{name}.crt"
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(crt), "-days", "2", "-subj", f"/CN={name}",
    )  # fmt: skip
    return key, crt


def _signed(folder: Path, name: str, ca: tuple[Path, Path], ext: str) -> tuple[Path, Path]:
    key, csr, crt = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.crt"
    extfile = folder / f"{name}.ext"
    extfile.write_text(ext, encoding="utf-8")
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}",
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca[1]), "-CAkey", str(ca[0]),
        "-CAcreateserial", "-out", str(crt), "-days", "2", "-extfile", str(extfile),
    )  # fmt: skip
    return key, crt


@dataclass
class Pki:
    ca: Path
    other_ca: Path
    client_cert: Path
    client_key: Path
    basic: PromServer  # HTTPS + basic auth
    mutual: PromServer  # HTTPS + client certificate required


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    why = missing_binaries()
    if why:
        pytest.skip(why)
    root = tmp_path_factory.mktemp("tls")
    ca = _ca(root, "observatory-test-ca")
    other = _ca(root, "some-other-ca")
    server_key, server_crt = _signed(
        root, "server", ca, "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
    )
    client_key, client_crt = _signed(root, "client", ca, "extendedKeyUsage=clientAuth\n")
    tls = f"tls_server_config:\n  cert_file: {server_crt}\n  key_file: {server_key}\n"
    basic_cfg = root / "web-basic.yml"
    basic_cfg.write_text(f"{tls}basic_auth_users:\n  {USER}: '{PASSWORD_HASH}'\n")
    mutual_cfg = root / "web-mutual.yml"
    mutual_cfg.write_text(
        f"{tls}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {ca[1]}\n"
    )
    ca_ok = {"verify": str(ca[1])}
    basic, mutual = (
        PromServer(
            root / f"tsdb-{name}",
            root,
            name=name,
            extra_args=[f"--web.config.file={web}"],
            scheme="https",
            ready_kwargs={**ca_ok, **probe},
        )
        for name, web, probe in (
            ("basic", basic_cfg, {"auth": (USER, PASSWORD)}),
            ("mutual", mutual_cfg, {"cert": (str(client_crt), str(client_key))}),
        )
    )
    try:
        basic.start()
        mutual.start()
        yield Pki(ca[1], other[1], client_crt, client_key, basic, mutual)
    finally:
        basic.stop()
        mutual.stop()


def _region(url: str, **extra: Any) -> Region:
    return Region(name="tls-region", url=url, latitude=0.0, longitude=0.0, **extra)


def _ask(region: Region) -> RegionSource:
    source = RegionSource(region, timeout_s=10, retries=2, backoff_s=0.05)
    try:
        assert source.instant("vector(7)")["result"][0]["value"][1] == "7"
    finally:
        source.close()
    return source


def _fails(region: Region) -> tuple[QueryError, RegionSource]:
    source = RegionSource(region, timeout_s=10, retries=2, backoff_s=0.05)
    try:
        with pytest.raises(QueryError) as info:
            source.instant("vector(7)")
    finally:
        source.close()
    return info.value, source


@pytest.fixture
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)


AUTH = {"basic": {"username": USER, "password_env": PASSWORD_ENV}}


def test_ca_bundle_and_basic_auth(pki: Pki, password: None) -> None:
    _ask(_region(pki.basic.url, ca_file=str(pki.ca), auth=AUTH))


def test_wrong_ca_is_a_clear_error_not_retried(pki: Pki, password: None) -> None:
    err, source = _fails(_region(pki.basic.url, ca_file=str(pki.other_ca), auth=AUTH))
    assert "tls-region" in str(err)
    assert "TLS" in err.message and "certificate verify failed" in err.message, err.message
    assert "ca_file" in err.message  # says what to change
    assert err.unreachable  # the region stops; other regions go on
    assert source.retried == 0  # a handshake that failed fails again: no retries


def test_system_trust_store_does_not_know_the_test_ca(pki: Pki, password: None) -> None:
    err, _ = _fails(_region(pki.basic.url, auth=AUTH))
    assert "certificate verify failed" in err.message, err.message


def test_verify_tls_off_connects_to_any_certificate(pki: Pki, password: None) -> None:
    _ask(_region(pki.basic.url, verify_tls=False, auth=AUTH))


def test_wrong_password_is_401_not_retried(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    err, source = _fails(_region(pki.basic.url, ca_file=str(pki.ca), auth=AUTH))
    assert err.status == 401 and "HTTP 401" in err.message, err.message
    assert "Unauthorized" in err.message, err.message  # Prometheus's own text
    assert "tls-region" in str(err) and "vector(7)" in str(err)
    assert source.retried == 0


def test_no_password_is_401(pki: Pki) -> None:
    err, _ = _fails(_region(pki.basic.url, ca_file=str(pki.ca)))
    assert err.status == 401, err.message


def test_client_certificate_required_and_accepted(pki: Pki) -> None:
    err, source = _fails(_region(pki.mutual.url, ca_file=str(pki.ca)))
    assert "tls-region" in str(err)
    assert "TLS handshake failed" in err.message and "bad certificate" in err.message, err.message
    assert source.retried == 0
    _ask(
        _region(
            pki.mutual.url,
            ca_file=str(pki.ca),
            cert_file=str(pki.client_cert),
            key_file=str(pki.client_key),
        )
    )


def test_check_config_connects_over_tls(pki: Pki, tmp_path: Path) -> None:
    """End to end: the CLI reaches the mutual-TLS server with the config's files."""
    config = write_config(
        tmp_path / "o.yaml",
        tmp_path / "store",
        {"tls-region": pki.mutual.url, "wrong-ca": pki.mutual.url},
        region_extra={
            "tls-region": {
                "ca_file": str(pki.ca),
                "cert_file": str(pki.client_cert),
                "key_file": str(pki.client_key),
            },
            "wrong-ca": {"ca_file": str(pki.other_ca)},
        },
    )
    load_config(config)  # valid
    res = run_cli(["check-config", str(config), "--connect"])
    rows = {ln.split()[0]: ln for ln in res.stdout.splitlines() if ln.strip()}
    assert rows["tls-region"].split()[1] == "ok", res.stdout
    assert "certificate verify failed" in rows["wrong-ca"], res.stdout
    assert res.returncode == 1, res.stdout + res.stderr  # one region unreachable
