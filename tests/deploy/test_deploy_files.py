"""The deployment files (Dockerfile, deploy/kubernetes/) are valid and agree with the code.

Offline and without a Docker engine or a cluster: hadolint lints the Dockerfile, every
Kubernetes manifest (each file, and what ``kubectl kustomize`` renders) is validated
against the Kubernetes OpenAPI schemas shipped by ``kubernetes-validate``, and the files
are checked against the code: every ``MUSUBI_*`` variable is a setting, every ``musubi``
subcommand and option exists, every extra is in pyproject.toml, ports and probes agree.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import click
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from musubi.api.app import api_routes, create_app
from musubi.cli.main import COMMANDS, cli
from musubi.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
K8S = ROOT / "deploy" / "kubernetes"
DOC = ROOT / "docs" / "deploy.md"
# The oldest Kubernetes we claim to support, and the newest the validator knows.
K8S_VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]
IMAGE_UID = 10001
VAR = re.compile(r"\bMUSUBI_[A-Z][A-Z0-9_]*")


def _tool(name: str) -> str:
    """A tool installed beside this Python (the dev extra), else on PATH; never a skip."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    assert found, f"{name} is missing: pip install -e '.[dev]'"
    return found


# -- Dockerfile ------------------------------------------------------------------------


@cache
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        words = (pending + line).split(None, 1)
        out.append((words[0].upper(), words[1] if len(words) > 1 else ""))
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    return out


def instructions(name: str) -> list[str]:
    return [args for instr, args in dockerfile() if instr == name]


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for args in instructions("ENV"):
        for word in shlex.split(args):
            key, _, value = word.partition("=")
            env[key] = value
    return env


def test_dockerfile_lints_clean(tmp_path: Path) -> None:
    config = tmp_path / "hadolint.yaml"  # ours alone, not a config in $HOME
    config.write_text("failure-threshold: style\n")
    run = subprocess.run(
        [_tool("hadolint"), "--no-color", "--config", str(config), str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_dockerfile_shape() -> None:
    froms = instructions("FROM")
    assert len(froms) >= 2, "multi-stage: a build stage and a runtime stage"
    assert instructions("ARG")[0] == "PYTHON_IMAGE=python:3.11-slim"
    assert froms[-1] == "${PYTHON_IMAGE}"
    assert json.loads(instructions("ENTRYPOINT")[-1]) == ["musubi"]
    user = instructions("USER")[-1]
    assert user == f"{IMAGE_UID}:{IMAGE_UID}", "numeric, so runAsNonRoot can check it"
    (install,) = [a for a in instructions("RUN") if "pip install" in a]
    assert '"./[${EXTRAS}]"' in install, "the source tree with the EXTRAS build argument"


def test_dockerfile_command_exists() -> None:
    args = json.loads(instructions("CMD")[-1])
    check_musubi_args(args)
    assert args[0] == "serve"
    assert "--host" in args and args[args.index("--host") + 1] == "0.0.0.0"  # noqa: S104


def test_dockerfile_ports_and_healthcheck_agree() -> None:
    env = dockerfile_env()
    assert env["MUSUBI_PORT"] == str(Settings.model_fields["port"].default)
    assert instructions("EXPOSE") == [env["MUSUBI_PORT"]]
    (health,) = instructions("HEALTHCHECK")
    command = json.loads(health.split(" CMD ", 1)[1])
    assert command[:2] == ["python", "-c"], "no curl in the image"
    assert "/healthz" in command[2] and "MUSUBI_PORT" in command[2]
    assert "/healthz" in app_paths()
    assert env["MUSUBI_HOME"] == config_map()["MUSUBI_HOME"]


def test_dockerignore_keeps_what_the_build_copies() -> None:
    kept = {line[1:].rstrip("/") for line in lines(ROOT / ".dockerignore") if line[0] == "!"}
    copied = {
        word.rstrip("/")
        for args in instructions("COPY")
        if not args.startswith("--from")
        for word in args.split()[:-1]
    }
    assert copied, "the build copies the source tree"
    assert copied <= kept, f"ignored by .dockerignore: {sorted(copied - kept)}"


# -- Kubernetes ------------------------------------------------------------------------


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@cache
def rendered() -> list[dict[str, Any]]:
    """What ``kubectl apply -k deploy/kubernetes`` would send (kustomize is in kubectl)."""
    run = subprocess.run(
        [_tool("kubectl"), "kustomize", str(K8S)], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    return [doc for doc in yaml.safe_load_all(run.stdout) if doc]


@cache
def all_docs() -> list[dict[str, Any]]:
    """Every resource of every file, listed in the kustomization or optional."""
    return [doc for path in manifest_files() for doc in load_all(path)]


def one(kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in all_docs() if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def config_map() -> dict[str, str]:
    data: dict[str, str] = one("ConfigMap", "musubi")["data"]
    return data


def deployments() -> list[dict[str, Any]]:
    return [d for d in all_docs() if d["kind"] == "Deployment"]


def containers() -> list[dict[str, Any]]:
    return [c for d in deployments() for c in d["spec"]["template"]["spec"]["containers"]]


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: p.name)
def test_manifest_matches_kubernetes_schema(path: Path, version: str) -> None:
    docs = load_all(path)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kustomization_renders_valid_resources(version: str) -> None:
    docs = rendered()
    kinds = sorted({d["kind"] for d in docs})
    assert kinds == ["ConfigMap", "Deployment", "PodDisruptionBudget", "Service"]
    for doc in docs:
        assert doc["metadata"]["namespace"] == "musubi"
        kubernetes_validate.validate(doc, version, strict=True)
    images = {c["image"] for d in docs if d["kind"] == "Deployment" for c in pod(d)["containers"]}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert images == {f"musubi:{project['version']}"}, "one image, tagged with this release"


def pod(deployment: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def test_every_musubi_variable_is_a_setting() -> None:
    fields = {f"MUSUBI_{name.upper()}" for name in Settings.model_fields}
    texts = [DOCKERFILE.read_text(), DOC.read_text(), *(p.read_text() for p in K8S.iterdir())]
    used = {name for text in texts for name in VAR.findall(text)}
    source = "\n".join(p.read_text() for p in (ROOT / "src" / "musubi").rglob("*.py"))
    # A few variables are read by the code directly rather than through Settings.
    unknown = {name for name in used - fields if f'"{name}"' not in source}
    assert not unknown, f"not a MUSUBI setting: {sorted(unknown)}"
    assert config_map()["MUSUBI_QUEUE"] == "redis"
    Settings.model_validate({k.removeprefix("MUSUBI_").lower(): v for k, v in config_map().items()})


def test_secrets_are_in_the_secret() -> None:
    secret = set(one("Secret", "musubi")["stringData"])
    secret_fields = {
        f"MUSUBI_{name.upper()}"
        for name, field in Settings.model_fields.items()
        if "SecretStr" in str(field.annotation)
    }
    # Every secret setting (and the gateway's key, read outside Settings) is in the Secret,
    # with the URLs, which carry passwords; none is in the ConfigMap.
    urls = {"MUSUBI_DATABASE_URL", "MUSUBI_REDIS_URL"}
    assert secret == secret_fields | urls | {"MUSUBI_GATEWAY_SECRET_KEY"}
    assert not secret & set(config_map())
    # docs/deploy.md creates the Secret with the same keys.
    documented = set(re.findall(r"--from-(?:literal|file)=(MUSUBI_[A-Z_]+)=", DOC.read_text()))
    assert documented == secret


def test_pods_get_the_config_and_the_secret() -> None:
    for deployment in deployments():
        spec = pod(deployment)
        assert spec["enableServiceLinks"] is False, "Service links inject MUSUBI_* variables"
        assert spec["securityContext"]["runAsUser"] == IMAGE_UID
        assert spec["securityContext"]["runAsNonRoot"] is True
        for container in spec["containers"]:
            refs = {
                ("ConfigMap", r["configMapRef"]["name"])
                if "configMapRef" in r
                else ("Secret", r["secretRef"]["name"])
                for r in container["envFrom"]
            }
            assert refs == {("ConfigMap", "musubi"), ("Secret", "musubi")}
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert config_map()["MUSUBI_HOME"] in mounts
            assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_container_commands_exist() -> None:
    commands = {c["args"][0] for c in containers()}
    assert commands == {"serve", "worker"}
    for container in containers():
        check_musubi_args(container["args"])


def test_api_ports_probes_and_service_agree() -> None:
    api = one("Deployment", "musubi-api")
    (container,) = pod(api)["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    args = container["args"]
    listen = int(args[args.index("--port") + 1])
    assert ports == {"http": listen}
    assert str(listen) == config_map()["MUSUBI_PORT"]
    assert listen == int(dockerfile_env()["MUSUBI_PORT"])
    kinds = ("startupProbe", "livenessProbe", "readinessProbe")
    probes = {k: container[k]["httpGet"] for k in kinds}
    for probe in probes.values():
        assert probe["port"] in ports or probe["port"] in ports.values()
        assert probe["path"] in app_paths()
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"

    labels = pod_labels(api)
    assert api["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = one("Service", "musubi-api")
    assert service["spec"]["selector"].items() <= labels.items()
    service_ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert service_ports["http"]["targetPort"] in ports
    backend = one("Ingress", "musubi")["spec"]["rules"][0]["http"]["paths"][0]["backend"]
    assert backend["service"] == {"name": "musubi-api", "port": {"name": "http"}}


def test_worker_has_no_port() -> None:
    (container,) = pod(one("Deployment", "musubi-worker"))["containers"]
    assert container["args"][0] == "worker"
    assert "ports" not in container and "livenessProbe" not in container


def test_disruption_budgets_select_pods() -> None:
    for budget in (d for d in all_docs() if d["kind"] == "PodDisruptionBudget"):
        wanted = budget["spec"]["selector"]["matchLabels"].items()
        matched = [d for d in deployments() if wanted <= pod_labels(d).items()]
        assert len(matched) == 1, budget["metadata"]["name"]


# -- extras and commands named anywhere -------------------------------------------------


def extras(text: str) -> set[str]:
    """The extras named by ``EXTRAS=a,b`` and ``musubi-platform[a,b]`` / ``.[a,b]`` in TEXT."""
    found = re.findall(r"EXTRAS=([a-z,]+)", text)
    found += re.findall(r"(?:musubi-platform|\.|/)\[([a-z,]+)\]", text)
    return {name for group in found for name in group.split(",")}


def test_extras_exist() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    defined = set(pyproject["project"]["optional-dependencies"])
    named = extras(DOCKERFILE.read_text()) | extras(DOC.read_text())
    assert {"postgres", "redis", "gateway", "sso", "knowledge"} <= named
    assert named <= defined, f"unknown extras: {sorted(named - defined)}"
    default = {a.split("=", 1)[1] for a in instructions("ARG") if a.startswith("EXTRAS=")}
    assert default == {"postgres,redis,gateway,sso"}, "both stages build the same extras"


def test_documented_commands_exist() -> None:
    used: list[list[str]] = []
    in_code = False
    for line in DOC.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        words = shlex.split(line.rstrip("\\ "), comments=True) if in_code else []
        if not words:
            continue
        if words[0].endswith("musubi"):  # musubi, /opt/musubi/bin/musubi, ExecStart=...
            used.append(words[1:])
        elif words[:2] == ["docker", "run"] and "musubi" in words:  # the image, then args
            used.append(words[len(words) - words[::-1].index("musubi") :])
    assert {w[0] for w in used if w} >= {"serve", "worker"}
    for words in used:
        if words and not words[0].startswith("-"):
            check_musubi_args(words)


# -- helpers ---------------------------------------------------------------------------


def check_musubi_args(args: list[str]) -> None:
    """ARGS (after ``musubi``) name a subcommand and options it accepts."""
    name = args[0]
    assert name in COMMANDS, f"no such command: musubi {name}"
    command = cli.get_command(click.Context(cli), name)
    assert command is not None
    rest = args[1:]
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        command = command.get_command(click.Context(command), rest[0])
        assert command is not None, f"no such command: musubi {name} {rest[0]}"
        rest = rest[1:]
    if isinstance(command, click.Group):
        return
    try:
        command.make_context(name, list(rest), resilient_parsing=False)
    except click.UsageError as exc:
        pytest.fail(f"musubi {' '.join(args)}: {exc}")


@cache
def app_paths() -> frozenset[str]:
    app = create_app(Settings())  # builds the routes only; nothing runs until its lifespan
    return frozenset(route.path for route in api_routes(app.routes))


def lines(path: Path) -> list[str]:
    return [s for s in (raw.strip() for raw in path.read_text().splitlines()) if s and s[0] != "#"]
