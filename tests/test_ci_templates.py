"""The CI templates in examples/ci/: valid for their CI, and they run what the docs say.

Both files go through ``check-jsonschema`` with its vendored copies of the GitHub workflow and GitLab
CI schemas (``--builtin-schema vendor.github-workflows`` / ``vendor.gitlab-ci``), offline: any
download would go to a dead loopback proxy and fail the test. A copy with a misspelled key must fail
the same validation, so the check can fail at all.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from ksentinel.cli import main

REPO = Path(__file__).resolve().parents[1]
CI = REPO / "examples" / "ci"
GITHUB = CI / "github-actions.yml"
GITLAB = CI / "gitlab-ci.yml"
SCHEMAS = {GITHUB: "vendor.github-workflows", GITLAB: "vendor.gitlab-ci"}
JUNIT = "reports/contract/junit.xml"
REPORT = "reports/contract"
# a value that looks like a credential: Kaltura secrets are 32 hex digits; tokens of other kinds
SECRET_LIKE = re.compile(r"\b[0-9a-f]{32}\b|\bgh[pousr]_[A-Za-z0-9]{20,}|\bglpat-[A-Za-z0-9_-]{16,}", re.I)


def check_jsonschema(path: Path, schema: str) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec("check_jsonschema") is None:  # a test dependency: fail, never skip
        pytest.fail("check-jsonschema is not installed (pip install check-jsonschema)")
    # offline: the vendored schema only; a download attempt would hit a closed loopback port
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    dead = "http://127.0.0.1:9"
    env.update(HTTP_PROXY=dead, HTTPS_PROXY=dead, http_proxy=dead, https_proxy=dead)
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def github_job() -> dict[str, Any]:
    (job,) = load(GITHUB)["jobs"].values()
    return job


def gitlab_job() -> dict[str, Any]:
    jobs = {name: job for name, job in load(GITLAB).items() if isinstance(job, dict) and "script" in job}
    assert list(jobs) == ["ksentinel-contract"]
    return jobs["ksentinel-contract"]


def contract_command(path: Path) -> list[str]:
    """The words of the template's ``ksentinel contract`` command (YAML folds ``>-`` into one line)."""
    if path == GITHUB:
        scripts = [
            step["run"] for step in github_job()["steps"] if "ksentinel contract" in step.get("run", "")
        ]
    else:
        scripts = [line for line in gitlab_job()["script"] if "ksentinel contract" in line]
    assert len(scripts) == 1, scripts
    words = shlex.split(scripts[0])
    assert words[:2] == ["ksentinel", "contract"], scripts[0]
    return words


def option(words: list[str], name: str) -> str:
    assert words.count(name) == 1, (name, words)
    return words[words.index(name) + 1]


@pytest.mark.parametrize(
    ("path", "schema"),
    [*SCHEMAS.items(), (GITHUB, "custom.github-workflows-require-timeout")],
    ids=["github-workflows", "gitlab-ci", "github-require-timeout"],
)
def test_template_is_valid_against_its_ci_schema(path: Path, schema: str) -> None:
    proc = check_jsonschema(path, schema)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok -- validation done" in proc.stdout


@pytest.mark.parametrize(
    ("path", "old", "new"),
    [
        (GITHUB, "    runs-on: ubuntu-latest\n", "    runs_on: ubuntu-latest\n"),
        (GITHUB, "        if: always()\n", "        iff: always()\n"),
        (GITLAB, "  artifacts:\n", "  artefacts:\n"),
        (GITLAB, "    when: always\n", "    when: allways\n"),
    ],
    ids=["github-runs_on", "github-iff", "gitlab-artefacts", "gitlab-allways"],
)
def test_a_broken_copy_fails_validation(path: Path, old: str, new: str, tmp_path: Path) -> None:
    text = path.read_text()
    assert text.count(old) == 1, old
    broken = tmp_path / path.name
    broken.write_text(text.replace(old, new))
    proc = check_jsonschema(broken, SCHEMAS[path])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Schema validation errors were encountered" in proc.stdout + proc.stderr


def test_github_workflow_runs_the_ci_profile_against_staging() -> None:
    doc = load(GITHUB)
    assert doc.get("on") or doc.get(True), "no trigger"  # PyYAML reads the key `on` as True
    job = github_job()
    env = job["env"]
    assert env["KSENTINEL_ADMIN_SECRET"] == "${{ secrets.KALTURA_ADMIN_SECRET }}"
    words = contract_command(GITHUB)
    assert option(words, "--profile") == "ci"
    assert option(words, "--environment") == "staging"
    assert option(words, "--url") == "$STAGING_URL" and env["STAGING_URL"].startswith("${{ vars.")
    assert option(words, "--partner-id") == "$STAGING_PARTNER_ID"
    assert env["STAGING_PARTNER_ID"].startswith("${{ vars.")
    assert option(words, "--junit") == JUNIT and option(words, "--report") == REPORT
    # ksentinel is installed before it runs
    runs = [str(step.get("run", "")) for step in job["steps"]]
    install = next(i for i, run in enumerate(runs) if "pip install" in run)
    assert install < next(i for i, run in enumerate(runs) if "ksentinel contract" in run)


def test_github_workflow_uploads_junit_and_report_always() -> None:
    steps = github_job()["steps"]
    run_at = next(i for i, s in enumerate(steps) if "ksentinel contract" in s.get("run", ""))
    uploads = [
        (i, s) for i, s in enumerate(steps) if str(s.get("uses", "")).startswith("actions/upload-artifact@")
    ]
    assert len(uploads) == 1
    at, upload = uploads[0]
    assert upload["uses"] == "actions/upload-artifact@v4"
    assert at > run_at and upload["if"] == "always()"
    paths = upload["with"]["path"].split()
    assert JUNIT in paths and f"{REPORT}/contract.html" in paths  # `--report DIR` writes DIR/contract.html


def test_gitlab_job_runs_the_ci_profile_and_keeps_junit_and_report_always() -> None:
    doc = load(GITLAB)
    job = gitlab_job()
    assert any("pip install" in line for line in job["before_script"])
    words = contract_command(GITLAB)
    assert option(words, "--profile") == "ci"
    assert option(words, "--environment") == "staging"
    assert option(words, "--url").startswith("$") and option(words, "--partner-id").startswith("$")
    assert option(words, "--junit") == JUNIT and option(words, "--report") == REPORT
    artifacts = job["artifacts"]
    assert artifacts["when"] == "always"
    assert artifacts["reports"]["junit"] == JUNIT
    assert any(
        REPORT.startswith(path.rstrip("/") + "/") or path.rstrip("/") == REPORT for path in artifacts["paths"]
    )
    # the secret comes from a masked CI/CD variable, so the file defines no such variable
    defined = set(doc.get("variables") or {}) | set(job.get("variables") or {})
    assert not {name for name in defined if "SECRET" in name}, defined


def secret_literals(text: str) -> list[str]:
    """What in a CI file looks like a secret written into it rather than taken from the secret store."""
    found = [match.group(0) for match in SECRET_LIKE.finditer(text)]
    # no secret on a command line (ksentinel takes secrets only from the environment)
    found += re.findall(r"--\S*secret\S*", text, re.I)

    def walk(node: Any, key: str = "") -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, str(k))
        elif isinstance(node, list):
            for v in node:
                walk(v, key)
        elif re.search(r"SECRET|TOKEN|PASSWORD|PASSWD", key, re.I) and not (
            isinstance(node, str) and re.fullmatch(r"\$\{\{ secrets\.[A-Z0-9_]+ \}\}", node)
        ):
            # a secret-named value may only be a reference to GitHub's secret store (GitLab's masked
            # variables reach the job without being named in the file at all)
            found.append(f"{key}: {node!r}")

    walk(yaml.safe_load(text))
    return found


@pytest.mark.parametrize("path", [GITHUB, GITLAB], ids=lambda p: p.name)
def test_no_secret_literal_in_the_template(path: Path) -> None:
    assert secret_literals(path.read_text()) == []


def test_a_secret_literal_is_found() -> None:
    github = GITHUB.read_text()
    reference = "${{ secrets.KALTURA_ADMIN_SECRET }}"
    assert reference in github
    assert secret_literals(github.replace(reference, "s3cr3t-admin")) == [
        "KSENTINEL_ADMIN_SECRET: 's3cr3t-admin'"
    ]
    assert secret_literals(github.replace(reference, "0123456789abcdef0123456789abcdef"))
    gitlab = GITLAB.read_text()
    leaked = gitlab.replace("  variables:\n", '  variables:\n    KSENTINEL_ADMIN_SECRET: "s3cr3t-admin"\n', 1)
    assert leaked != gitlab
    assert secret_literals(leaked) == ["KSENTINEL_ADMIN_SECRET: 's3cr3t-admin'"]
    assert secret_literals(gitlab.replace("--profile ci", "--profile ci --admin-secret x")) == [
        "--admin-secret"
    ]


@pytest.mark.parametrize("path", [GITHUB, GITLAB], ids=lambda p: p.name)
def test_template_uses_only_options_of_ksentinel_contract(path: Path) -> None:
    result = CliRunner().invoke(main, ["contract", "--help"], env={"KSENTINEL_CONFIG": ""})
    assert result.exit_code == 0, result.output
    known = set(re.findall(r"--[a-z][a-z-]+", result.output))
    used = {word for word in contract_command(path) if word.startswith("--")}
    assert used == {"--profile", "--url", "--partner-id", "--environment", "--junit", "--report"}
    assert used <= known, used - known
