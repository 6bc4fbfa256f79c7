"""schemathesis against the api's own OpenAPI document, on a live `cityops api` and a real broker:
thousands of generated requests (valid and broken), none answered with a server error or a status
the document does not list."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.processes import Service
from infra.api import keys

CPYTHON_AST_BUG = "AST constructor recursion depth mismatch"


def test_no_server_error_and_no_undocumented_status(pipeline_env, tmp_path):
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    if st is None:
        pytest.skip("schemathesis is not installed (make test installs it)")
    env = pipeline_env | {"CITYOPS_API_RATE_LIMIT": "1000000/minute", "CITYOPS_API_LOOKUP_RATE_LIMIT": "1000000/minute"}
    token = keys.issue(Path(env["CITYOPS_API_KEYS_FILE"]), "schemathesis",
                       ["intake", "operator", "read", "department:cgj"]).token
    api = Service.start("api", env, tmp_path / "api.log")
    try:
        api.wait_ready(60)
        for _attempt in range(2):
            run = subprocess.run(
                [st, "run", f"{api.url}/openapi.json", "-H", f"Authorization: Bearer {token}",
                 "--checks", "not_a_server_error,status_code_conformance", "--phases", "examples,coverage,fuzzing",
                 # One worker: schemathesis' threads parse lambdas with `ast.parse` at once, and CPython 3.11
                 # then may raise a spurious "AST constructor recursion depth mismatch" (python/cpython#106905),
                 # which failed a clean-clone run once in four.
                 "--max-examples", "15", "--workers", "1", "--no-color"],
                capture_output=True, text=True, timeout=400, cwd=tmp_path)  # its cache stays out of the checkout
            if CPYTHON_AST_BUG not in run.stdout:  # that bug, inside schemathesis, is the one reason to run again
                break
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:] + api.log_tail(40)
        assert " passed" in run.stdout and "failures" not in run.stdout.split("SUMMARY")[-1]
    finally:
        api.stop()
