"""The API fuzzed from its own OpenAPI description (docs/openapi.yaml) with schemathesis,
against a live console under gunicorn: every operation, valid and invalid input, examples,
coverage, random fuzzing and stateful sequences along the schema's links (create -> send ->
list), with every check schemathesis has (``--checks all``). Any 500, an undocumented status,
a non-JSON answer, a body that does not match its schema, valid input refused (except the
refusals of state the description documents: ``hooks.py``), invalid input accepted, or a
method the description does not list answered with anything but 405 fails the run.

The figures of the run (cases, operations, failures) are written to
``var/reliability/fuzz-<database>.json`` for docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.live import PROJECT
from tests.personas import make_persona

pytestmark = [pytest.mark.live, pytest.mark.fuzz]

# Every check schemathesis has, positive data acceptance and unsupported methods included;
# the refusals of valid data that only state explains are told apart in hooks.py.
CHECKS = "all"
# Per operation and phase; the seed makes a run reproducible.
MAX_EXAMPLES = int(os.environ.get("SOFIIA_FUZZ_EXAMPLES", "100"))
SEED = int(os.environ.get("SOFIIA_FUZZ_SEED", "20261129"))


def test_the_live_api_conforms_to_its_description_for_any_input(live_console, settings, tmp_path):
    settings.SOFIIA_AUDIT_KEYS = ["fuzz-audit-key-" + "k" * 32]
    alice = make_persona("alice")
    # A node that hangs costs the fuzzer the infer timeout per case: keep it short. The
    # chat-creation, chat-change and audit-read quotas are out of the way like the send quotas
    # (their 429s are documented and tested elsewhere): the fuzzer should reach the other answers.
    console = live_console(
        workers=2,
        SOFIIA_INFER_TIMEOUT="2",
        SOFIIA_RATE_LIMIT_CHAT_CREATE="100000/3600",
        SOFIIA_RATE_LIMIT_CHAT_CHANGE="100000/3600",
        SOFIIA_RATE_LIMIT_AUDIT_READ="100000/3600",
    )
    http = console.session(alice.token)
    for agent in ("echo", "fail500", "garbage"):
        assert http.post(f"{console.base}/api/chats", json={"title": agent, "agent": agent}, timeout=10).ok

    report = tmp_path / "report.json"
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(Path(__file__).with_name("schemathesis.toml")),
        "run", str(PROJECT / "docs" / "openapi.yaml"),
        "--url", console.base,
        "--header", f"Authorization: Bearer {alice.token}",
        "--header", f"X-Audit-Key: {settings.SOFIIA_AUDIT_KEYS[0]}",
        "--checks", CHECKS,
        "--phases", "examples,coverage,fuzzing,stateful",
        "--mode", "all",
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(SEED),
        # One worker: Hypothesis parses lambdas with ast in threads, which trips a CPython 3.11 bug
        # ("AST constructor recursion depth mismatch") under several workers.
        "--workers", "1",
        "--request-timeout", "15",
        "--generation-database", "none",
        "--suppress-health-check", "all",
        "--no-color",
        "--report", "json", "--report-json-path", str(report),
    ]  # fmt: skip
    environment = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.fuzz.hooks",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH")])),
    }
    run = subprocess.run(
        command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=900, check=False
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-20000:]
    # The summary lists failures under "Failures:"; a clean run has none (and may still warn).
    assert "Failures:" not in output, output[-5000:]
    assert "unique failures" not in output, output[-5000:]

    figures = _figures(report, output)
    database = "postgresql" if settings.DATABASES["default"]["ENGINE"].endswith("postgresql") else "sqlite"
    out = PROJECT / "var" / "reliability"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"fuzz-{database}.json").write_text(json.dumps(figures, indent=2) + "\n")
    assert figures["test_cases"] >= MAX_EXAMPLES
    # The console is still healthy after the run.
    assert requests.get(f"{console.base}/api/health", timeout=10).status_code == 200


def _figures(report: Path, output: str) -> dict[str, object]:
    data = json.loads(report.read_text()) if report.exists() else {}
    figures: dict[str, object] = {"seed": SEED, "max_examples": MAX_EXAMPLES, "checks": CHECKS.split(",")}
    figures["dropped_by_hooks"] = _count_dropped(output)
    figures["report"] = {key: value for key, value in data.items() if not isinstance(value, (list, dict))}
    figures["test_cases"] = _count_cases(output)
    figures["output_tail"] = output.strip().splitlines()[-25:]
    return figures


def _count_dropped(output: str) -> int:
    """Refusals of valid data that hooks.py recognised as documented state."""
    match = re.search(r"^\s*Filtered: (\d+) \(dropped by `filter_failure`\)", output, re.MULTILINE)
    return int(match.group(1)) if match else 0


def _count_cases(output: str) -> int:
    """The summary's "N generated, N passed"."""
    match = re.search(r"^\s*(\d+) generated", output, re.MULTILINE)
    return int(match.group(1)) if match else 0
