"""docker-compose.yml's security defaults: every secret required, nothing published beyond loopback.

No Docker engine runs the tests, so the file is read as Compose reads it: `${VAR:?…}` is checked
for every service before profiles are applied, and Grafana's start-up guard is run with `sh`.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = (ROOT / "docker-compose.yml").read_text()
SERVICES: dict[str, Any] = yaml.safe_load(COMPOSE)["services"]
REQUIRED = re.compile(r"\$\{(\w+):\?")


def test_redis_and_flower_require_their_secrets() -> None:
    assert "REDIS_PASSWORD" in REQUIRED.findall(str(SERVICES["redis"]["command"]))
    assert "FLOWER_BASIC_AUTH" in REQUIRED.findall(str(SERVICES["flower"]["environment"]))
    assert "ports" not in SERVICES["redis"]


def test_no_profiled_service_requires_a_variable_a_plain_up_would_then_need() -> None:
    """Compose interpolates profiled services too: a `:?` there breaks `docker compose up` for all."""
    for name, service in SERVICES.items():
        if service.get("profiles"):
            assert not REQUIRED.findall(str(service)), name


def test_every_published_port_is_on_loopback() -> None:
    ports = [p for s in SERVICES.values() for p in s.get("ports", [])]
    assert ports
    assert all(str(p).startswith("127.0.0.1:") for p in ports), ports


def grafana_guard(password: str | None) -> subprocess.CompletedProcess[str]:
    """Grafana's entrypoint as the container runs it (Compose turns `$$` into `$`)."""
    shell, flag, script = SERVICES["grafana"]["entrypoint"]
    assert (shell, flag) == ("/bin/sh", "-c")
    env = {"PATH": "/usr/bin:/bin"}
    if password is not None:
        env["GF_SECURITY_ADMIN_PASSWORD"] = password
    argv = ["sh", "-c", script.replace("$$", "$")]
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=False)


def test_grafana_has_no_default_password() -> None:
    unset_means_empty = "${GRAFANA_ADMIN_PASSWORD:-}"
    assert SERVICES["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == unset_means_empty
    assert "admin}" not in COMPOSE


@pytest.mark.parametrize("password", [None, "", "admin"])
def test_grafana_refuses_to_start_without_a_real_password(password: str | None) -> None:
    result = grafana_guard(password)
    assert result.returncode == 1
    assert "set GRAFANA_ADMIN_PASSWORD" in result.stderr


def test_grafana_starts_with_a_password() -> None:
    result = grafana_guard("a long passphrase")
    assert result.returncode == 127  # it went on to exec Grafana's own /run.sh (not in this machine)
    assert "/run.sh" in result.stderr
    assert "GRAFANA_ADMIN_PASSWORD" not in result.stderr
