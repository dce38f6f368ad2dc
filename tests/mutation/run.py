"""Mutation testing of the serving modules with cosmic-ray, one module at a time against its own tests.

``make mutation MODULES="detect config"`` (or ``python tests/mutation/run.py detect config``) copies the work
tree to a scratch folder (the checkout is never mutated, so it can be edited meanwhile), makes every mutant
of each module that the operators kept in ``mutation.toml`` produce, runs that module's test files against
each one (``pytest -x``, stopping at the first failure), and writes the score per module to
``tests/mutation/scores.json`` and the table in ``tests/mutation/scores.md`` (other modules' rows are kept).

A mutant is *killed* when the tests fail (or time out), *survives* when they pass. Mutants listed as
equivalent in ``mutation.toml`` (no test can observe them; each entry says why) and mutants inside type
annotations (never evaluated under ``from __future__ import annotations``) are not run and not counted:
score = killed / (killed + survived). Surviving mutants are listed with their line, so each one is either
a missing test or, after reading it, a new entry in the equivalent list.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import hashlib
import importlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CONFIG = HERE / "mutation.toml"
SCORES_JSON = HERE / "scores.json"
SCORES_MD = HERE / "scores.md"


@dataclass(frozen=True)
class Mutant:
    job_id: str
    operator: str
    line: int
    before: str  # the source line, stripped
    after: str  # the same line mutated, stripped

    def describe(self) -> str:
        return f"L{self.line} {self.operator.removeprefix('core/')}: `{self.before}` -> `{self.after}`"


def _copy_tree(dest: Path) -> None:
    """The work tree as git sees it (tracked and untracked files, not ignored ones), plus the virtualenv link."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if not source.is_file():
            continue  # deleted but still tracked
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    venv = ROOT / ".venv"
    if venv.exists():
        (dest / ".venv").symlink_to(venv.resolve())


def _annotation_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Where the annotations are, when the module defers them (``from __future__ import annotations``):
    their code never runs, so a mutant there cannot be observed."""
    tree = ast.parse(source)
    deferred = any(
        isinstance(node, ast.ImportFrom)
        and node.module == "__future__"
        and any(alias.name == "annotations" for alias in node.names)
        for node in tree.body
    )
    if not deferred:
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg | ast.AnnAssign) and node.annotation is not None:
            found.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns is not None:
            found.append(node.returns)
    spans = []
    for n in found:
        assert n.end_lineno is not None and n.end_col_offset is not None  # set on every node parsed from source
        spans.append(((n.lineno, n.col_offset), (n.end_lineno, n.end_col_offset)))
    return spans


def _in_annotation(start: tuple[int, int], spans: list[tuple[tuple[int, int], tuple[int, int]]]) -> bool:
    return any(first <= start < last for first, last in spans)


def _keyword_marker(source: str) -> set[tuple[int, int]]:
    """Positions of the bare ``*`` that makes later parameters keyword-only: cosmic-ray takes it for a
    multiplication, but turning it into ``/`` changes no call that passes those parameters by name."""
    import parso

    found = set()

    def walk(node) -> None:
        if node.type == "operator" and node.value == "*" and node.parent.type == "parameters":
            found.add(node.start_pos)
        for child in getattr(node, "children", ()):
            walk(child)

    walk(parso.parse(source))
    return found


def _mutants(work_db, source: str, kept: list[str]) -> tuple[list[Mutant], int]:
    """The session's mutants by the kept operators (with their lines before and after), and how many of
    those lie inside annotations."""
    import cosmic_ray.plugins
    from cosmic_ray.mutating import mutate_code

    lines = source.splitlines()
    spans = _annotation_spans(source)
    markers = _keyword_marker(source)
    mutants, in_annotations = [], 0
    for item in work_db.pending_work_items:
        (spec,) = item.mutations
        if not _kept(spec.operator_name, kept):
            continue
        if _in_annotation(tuple(spec.start_pos), spans) or tuple(spec.start_pos) in markers:
            in_annotations += 1
            continue
        operator = cosmic_ray.plugins.get_operator(spec.operator_name)(**(spec.operator_args or {}))
        try:
            mutated = mutate_code(source, operator, spec.occurrence)
        except AttributeError:  # cosmic-ray's ExceptionReplacer fails on a dotted name (json.JSONDecodeError)
            print(f"  cosmic-ray cannot make {spec.operator_name} at line {spec.start_pos[0]}: skipped", flush=True)
            continue
        if mutated is None:
            continue
        row = spec.start_pos[0]
        changed = mutated.splitlines()
        # a mutation changes one line in place (parso keeps the layout), so the same row holds it
        after = changed[row - 1] if row - 1 < len(changed) else ""
        mutants.append(Mutant(item.job_id, spec.operator_name, row, lines[row - 1].strip(), after.strip()))
    return mutants, in_annotations


def _equivalents(config: dict, module: str) -> list[dict]:
    return [e for e in config.get("equivalent", []) if e["module"] == module]


def _matches(entry: dict, mutant: Mutant) -> bool:
    return (
        entry["line"] == mutant.before
        and entry.get("row", mutant.line) == mutant.line
        and entry.get("mutated", mutant.after) == mutant.after
        and entry.get("operator", mutant.operator) in (mutant.operator, mutant.operator.removeprefix("core/"))
    )


def _kept(operator: str, kept: list[str]) -> bool:
    return operator.removeprefix("core/") in kept


def _prewarm() -> None:
    """Import the heavy third-party modules once: each forked test run then starts without their cost."""
    for name in ("numpy", "cv2", "PIL.Image", "pytest", "requests", "jsonschema", "ai_edge_litert.interpreter"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def _run_tests(scratch: Path, tests: list[str], timeout: float, log: Path | None = None) -> str:
    """``killed``, ``survived`` or ``timeout``: pytest on ``tests`` in a child forked from this process
    (which has imported nothing of the project, so the child imports the module as it is on disk now)."""
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 70
        try:
            os.setsid()  # its own process group, so a timeout also ends the servers a test started
            os.chdir(scratch)
            sys.path.insert(0, str(scratch))
            sys.dont_write_bytecode = True  # a mutant rewritten within the same second must not reuse a .pyc
            out = os.open(log or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(out, 1)
            os.dup2(out, 2)
            import pytest

            code = int(pytest.main(["-x", "-q", "-p", "no:cacheprovider", *tests]))
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return "survived" if os.waitstatus_to_exitcode(status) == 0 else "killed"
            if time.monotonic() > deadline:
                os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return "timeout"
            time.sleep(0.02)
    except BaseException:  # interrupted or terminated: take the test run (and its servers) down too
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        raise


def run_module(
    module: str, config: dict, scratch: Path, sample: int, match: str | None, verbose: bool, before: dict | None
) -> dict:
    """Make the module's mutants with cosmic-ray, run its tests against each, and count. With ``before`` (the
    module's last scores, for the same source), only that run's survivors are run again."""
    import cosmic_ray.plugins
    from cosmic_ray.mutating import use_mutation
    from cosmic_ray.work_db import use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome, WorkResult

    path = f"emotion/{module}.py"
    tests = config["modules"][module]["tests"]

    log = scratch / f"{module}.baseline.log"
    started = time.monotonic()
    if _run_tests(scratch, tests, 1800, log) != "survived":
        sys.exit(f"{module}: the tests fail without any mutation:\n{log.read_text()[-3000:]}")
    baseline_s = time.monotonic() - started
    timeout = max(30.0, 4 * baseline_s)

    cfg = scratch / f"{module}.toml"
    cfg.write_text(f'[cosmic-ray]\nmodule-path = "{path}"\nexcluded-modules = []\n')
    session = scratch / f"{module}.sqlite"
    session.unlink(missing_ok=True)
    cli = str(Path(sys.executable).with_name("cosmic-ray"))
    subprocess.run([cli, "init", str(cfg), str(session)], cwd=scratch, check=True)

    source = (scratch / path).read_text()
    digest = hashlib.sha256(source.encode()).hexdigest()
    if before is not None and before.get("source_sha256") != digest:
        sys.exit(f"{path} changed since its last run: run all its mutants again")
    equivalents = _equivalents(config, module)
    used, run, equivalent = set(), [], 0
    with use_db(str(session)) as db:
        specs = {item.job_id: item.mutations[0] for item in db.pending_work_items}
        mutants, in_annotations = _mutants(db, source, config["operators"])
        for mutant in mutants:
            entry = next((i for i, e in enumerate(equivalents) if _matches(e, mutant)), None)
            if entry is None:
                run.append(mutant)
            else:
                used.add(entry)
                equivalent += 1
        total = len(run)
        if before is not None:
            run = [m for m in run if m.describe() in set(before["surviving"])]
        else:
            run = [m for m in run if re.search(match, m.describe())] if match else run[::sample]
        print(
            f"{module}: {len(run)} of {total} mutants to run ({equivalent} listed as equivalent, {in_annotations} in "
            f"annotations), tests: {' '.join(tests)}, baseline {baseline_s:.1f} s",
            flush=True,
        )
        killed: list[Mutant | None] = []
        survived: list[Mutant] = []
        timeouts = 0
        exec_started = time.monotonic()
        for number, mutant in enumerate(run, start=1):
            spec = specs[mutant.job_id]
            operator = cosmic_ray.plugins.get_operator(spec.operator_name)(**(spec.operator_args or {}))
            with use_mutation(scratch / path, operator, spec.occurrence) as (_, mutated):
                assert mutated is not None, mutant
                outcome = _run_tests(scratch, tests, timeout)
            (survived if outcome == "survived" else killed).append(mutant)
            timeouts += outcome == "timeout"
            db.set_result(
                mutant.job_id,
                WorkResult(
                    output=outcome,
                    test_outcome=TestOutcome.SURVIVED if outcome == "survived" else TestOutcome.KILLED,
                    worker_outcome=WorkerOutcome.NORMAL,
                ),
            )
            if outcome == "survived" and verbose:
                print(f"  survived {mutant.describe()}", flush=True)
            if number % 25 == 0:
                print(f"  {number}/{len(run)}: {len(survived)} survived so far", flush=True)
        elapsed = time.monotonic() - exec_started
    if before is not None:  # the mutants killed then are still killed: tests were only added
        killed += [None] * before["killed"]
        timeouts += before["timeouts"]
    scored = len(killed) + len(survived)
    return {
        "source_sha256": digest,
        "module": path,
        "tests": tests,
        "killed": len(killed),
        "survived": len(survived),
        "timeouts": timeouts,
        "equivalent": equivalent,
        "in_annotations": in_annotations,
        "sampled": f"every {sample}th of {total}" if sample > 1 else None,
        "survivors_rerun": before is not None,
        "score": round(len(killed) / scored, 4) if scored else None,
        "seconds": round(elapsed, 1),
        "surviving": sorted((m.describe() for m in survived), key=lambda s: int(s.split()[0][1:])),
        "unused_equivalent_entries": [equivalents[i]["line"] for i in range(len(equivalents)) if i not in used],
    }


README = ROOT / "README.md"


def _write(results: dict[str, dict], out: Path, config: dict) -> None:
    """Merge ``results`` into the scores file; beside the default one, also the table in scores.md (with
    the survivors and the equivalent list) and in the README between its mutation markers."""
    scores = json.loads(out.read_text()) if out.is_file() else {}
    scores.update(results)
    out.write_text(json.dumps(dict(sorted(scores.items())), indent=2) + "\n")
    if out != SCORES_JSON:
        return
    rows = [
        "| module | killed | survived | equivalent (listed) | score | tests | measured |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for _, s in sorted(scores.items()):
        score = "n/a" if s["score"] is None else f"{s['score']:.1%}"
        if s.get("sampled"):
            score += f" ({s['sampled']})"
        if s.get("survivors_rerun"):
            score += " (its survivors rerun after tests were added)"
        rows.append(
            f"| `{s['module']}` | {s['killed']} | {s['survived']} | {s['equivalent']} | {score} | "
            f"{', '.join(f'`{t}`' for t in s['tests'])} | {s['measured']} |"
        )
    table = "\n".join(rows) + "\n"
    survivors = [f"- `{s['module']}` {line}" for _, s in sorted(scores.items()) for line in s["surviving"]]
    equivalents = [
        f"- `emotion/{e['module']}.py`"
        + (f" L{e['row']}" if "row" in e else "")
        + f" `{e['line']}`"
        + (f" -> `{e['mutated']}`" if "mutated" in e else "")
        + f": {' '.join(e['reason'].split())}"
        for e in sorted(config.get("equivalent", []), key=lambda e: e["module"])
    ]
    SCORES_MD.write_text(
        "# Mutation scores\n\nWritten by `make mutation` (`tests/mutation/run.py`); do not edit by hand.\n\n"
        + table
        + "\n## Surviving mutants\n\n"
        + ("\n".join(survivors) if survivors else "None.")
        + "\n\n## Equivalent mutants (from mutation.toml: not run, not counted)\n\n"
        + ("\n".join(equivalents) if equivalents else "None.")
        + "\n"
    )
    start, end = "<!-- mutation:start -->\n", "<!-- mutation:end -->"
    readme = README.read_text()
    if start in readme and end in readme:
        head, rest = readme.split(start, 1)
        README.write_text(head + start + table + rest[rest.index(end) :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", help="module names under emotion/ (default: all in mutation.toml)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy (its sessions) afterwards")
    parser.add_argument("--verbose", action="store_true", help="print each surviving mutant as it survives")
    parser.add_argument("--sample", type=int, default=1, help="run every Nth mutant only (a quick estimate)")
    parser.add_argument(
        "--match",
        help="run only the mutants whose description (as listed for survivors) holds this regex; "
        "a check after adding a test: prints the outcome, writes no scores",
    )
    parser.add_argument(
        "--survivors",
        action="store_true",
        help="run only the last run's survivors again (after adding tests; the module must be unchanged)",
    )
    parser.add_argument("--tests", nargs="+", help="run these test files instead of the module's (one module)")
    parser.add_argument(
        "--out", type=Path, default=SCORES_JSON, help="scores file (the table is written only beside the default one)"
    )
    args = parser.parse_args()
    config = tomllib.loads(CONFIG.read_text())
    modules = args.modules or list(config["modules"])
    unknown = [m for m in modules if m not in config["modules"]]
    if unknown:
        sys.exit(f"no entry in {CONFIG.name} for: {', '.join(unknown)} (add its test files there)")
    if args.tests:
        if len(modules) != 1:
            sys.exit("--tests needs exactly one module")
        config["modules"][modules[0]]["tests"] = args.tests
    _prewarm()
    scratch = Path(tempfile.mkdtemp(prefix="emotion-mutation-"))
    try:
        _copy_tree(scratch)
        for module in modules:
            before = None
            if args.survivors:
                scores = json.loads(args.out.read_text()) if args.out.is_file() else {}
                if module not in scores:
                    sys.exit(f"no earlier scores for {module} in {args.out}")
                before = scores[module]
            result = run_module(module, config, scratch, args.sample, args.match, args.verbose, before)
            result["measured"] = datetime.now(UTC).strftime("%Y-%m-%d")
            if not args.match:
                _write({module: result}, args.out.resolve(), config)
            score = "n/a" if result["score"] is None else f"{result['score']:.1%}"
            print(
                f"{module}: {result['killed']} killed, {result['survived']} survived, "
                f"{result['equivalent']} equivalent: {score} in {result['seconds']} s",
                flush=True,
            )
            for line in result["surviving"]:
                print(f"  survived {line}", flush=True)
            for line in result["unused_equivalent_entries"]:
                print(f"  equivalent entry matches no mutant now (remove it?): {line}", flush=True)
    finally:
        if args.keep:
            print(f"scratch copy kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"scores: {SCORES_MD.relative_to(ROOT)}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that a terminated run cleans up as on Ctrl-C
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
