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
import json
import os
import shutil
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
    return [((n.lineno, n.col_offset), (n.end_lineno, n.end_col_offset)) for n in found]


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
        mutated = mutate_code(source, operator, spec.occurrence)
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
        and entry.get("mutated", mutant.after) == mutant.after
        and entry.get("operator", mutant.operator) in (mutant.operator, mutant.operator.removeprefix("core/"))
    )


def _kept(operator: str, kept: list[str]) -> bool:
    return operator.removeprefix("core/") in kept


def run_module(module: str, config: dict, scratch: Path, python: str, verbose: bool) -> dict:
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    spec = config["modules"][module]
    path = f"emotion/{module}.py"
    tests = spec["tests"]
    command = f"{python} -m pytest -x -q -p no:cacheprovider -p no:randomly {' '.join(tests)}"

    started = time.monotonic()
    baseline = subprocess.run(command.split(), cwd=scratch, capture_output=True, text=True)
    baseline_s = time.monotonic() - started
    if baseline.returncode != 0:
        sys.exit(f"{module}: the tests fail without any mutation:\n{baseline.stdout[-3000:]}")
    timeout = max(30.0, 4 * baseline_s)

    cfg = scratch / f"{module}.toml"
    cfg.write_text(
        "[cosmic-ray]\n"
        f'module-path = "{path}"\n'
        f"timeout = {timeout:.0f}\n"
        "excluded-modules = []\n"
        f'test-command = "{command}"\n'
        "[cosmic-ray.distributor]\n"
        'name = "local"\n'
    )
    session = scratch / f"{module}.sqlite"
    session.unlink(missing_ok=True)
    cosmic_ray = str(Path(python).with_name("cosmic-ray"))
    subprocess.run([cosmic_ray, "init", str(cfg), str(session)], cwd=scratch, check=True)

    source = (scratch / path).read_text()
    equivalents = _equivalents(config, module)
    used = set()
    with use_db(str(session)) as db:
        mutants, in_annotations = _mutants(db, source, config["operators"])
        all_ids = {m.job_id for m in mutants}
        run = []
        for mutant in mutants:
            entry = next((i for i, e in enumerate(equivalents) if _matches(e, mutant)), None)
            if entry is not None:
                used.add(entry)
                continue
            run.append(mutant)
        # everything else is marked skipped so that `cosmic-ray exec` runs only the kept mutants
        keep = {m.job_id for m in run}
        for item in list(db.pending_work_items):
            if item.job_id not in keep:
                db.set_result(item.job_id, WorkResult(output="not run", worker_outcome=WorkerOutcome.SKIPPED))
    print(
        f"{module}: {len(run)} mutants to run ({len(all_ids) - len(run)} listed as equivalent, {in_annotations} in "
        f"annotations), tests: {' '.join(tests)}, baseline {baseline_s:.1f} s",
        flush=True,
    )

    exec_started = time.monotonic()
    subprocess.run([cosmic_ray, "exec", str(cfg), str(session)], cwd=scratch, check=True)
    elapsed = time.monotonic() - exec_started

    by_id = {m.job_id: m for m in run}
    killed, survived, timeouts = [], [], 0
    with use_db(str(session), WorkDB.Mode.open) as db:
        for job_id, result in db.results:
            mutant = by_id.get(job_id)
            if mutant is None:
                continue
            if result.worker_outcome != WorkerOutcome.NORMAL or result.is_killed:
                killed.append(mutant)
                timeouts += result.output == "timeout"
            else:
                survived.append(mutant)
                if verbose:
                    print(result.diff, flush=True)
    scored = len(killed) + len(survived)
    return {
        "module": path,
        "tests": tests,
        "killed": len(killed),
        "survived": len(survived),
        "timeouts": timeouts,
        "equivalent": sum(1 for m in mutants if any(_matches(e, m) for e in equivalents)),
        "in_annotations": in_annotations,
        "score": round(len(killed) / scored, 4) if scored else None,
        "seconds": round(elapsed, 1),
        "surviving": sorted((m.describe() for m in survived), key=lambda s: int(s.split()[0][1:])),
        "unused_equivalent_entries": [equivalents[i]["line"] for i in range(len(equivalents)) if i not in used],
    }


def _write(results: dict[str, dict], out: Path) -> None:
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
        score = "n/a" if s["score"] is None else f"{s['score']:.0%}"
        rows.append(
            f"| `{s['module']}` | {s['killed']} | {s['survived']} | {s['equivalent']} | {score} | "
            f"{', '.join(f'`{t}`' for t in s['tests'])} | {s['measured']} |"
        )
    survivors = [f"- `{s['module']}` {line}" for _, s in sorted(scores.items()) for line in s["surviving"]]
    SCORES_MD.write_text(
        "# Mutation scores\n\nWritten by `make mutation` (`tests/mutation/run.py`); do not edit by hand.\n\n"
        + "\n".join(rows)
        + "\n\n## Surviving mutants\n\n"
        + ("\n".join(survivors) if survivors else "None.")
        + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", help="module names under emotion/ (default: all in mutation.toml)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy (its sessions) afterwards")
    parser.add_argument("--diffs", action="store_true", help="print each surviving mutant's diff")
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
    python = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
    scratch = Path(tempfile.mkdtemp(prefix="emotion-mutation-"))
    try:
        _copy_tree(scratch)
        for module in modules:
            result = run_module(module, config, scratch, python, args.diffs)
            result["measured"] = datetime.now(UTC).strftime("%Y-%m-%d")
            _write({module: result}, args.out.resolve())
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
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
