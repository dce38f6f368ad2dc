"""Render ``bench/out/*.json`` as the results table in ``bench/README.md`` (between the markers)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from bench import cost
from bench.cgroup import TIERS
from bench.common import OUT

README = Path(__file__).resolve().parent / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"
TIERS_START, TIERS_END = "<!-- tiers:start -->", "<!-- tiers:end -->"
SHORT = {
    "astronaut_512x512": "astronaut 512x512",
    "one_face_640x480": "one face 640x480",
    "five_faces_1920x1080": "five faces 1920x1080",
    "tight_crop_350x350": "tight crop 350x350",
}


def _load(name: str) -> dict:
    path = OUT / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def table() -> str:
    cold, lat, thr, clf = _load("cold_start"), _load("latency"), _load("throughput"), _load("classifier")
    rows = ["| measure | result | target |", "| --- | --- | --- |"]
    if cold:
        rows += [
            f"| cold start to first response | {cold['cold_start_to_first_response_s']} s "
            f"(imports {cold['split_ms']['imports_ms']} ms, model load {cold['split_ms']['model_load_ms']} ms, "
            f"first request {cold['split_ms']['first_request_ms']} ms) | |",
            f"| bare `import tensorflow` (same run) | {cold['import_tensorflow_statement_s']} s statement, "
            f"{cold['python_import_tensorflow_process_s']} s whole process | |",
            f"| ratio cold start / `import tensorflow` | {cold['ratio_to_import_tensorflow_statement']} | <= 0.15 |",
        ]
    targets = {"one_face_640x480": "p50 <= 15 ms", "five_faces_1920x1080": "p50 <= 60 ms"}
    for mode in ("in_process", "http"):
        for photo, s in lat.get(mode, {}).items():
            target = targets.get(photo, "") if mode == "in_process" else ""
            rows.append(
                f"| {mode.replace('_', '-')} latency, {photo} | p50 {s['p50_ms']} ms, p95 {s['p95_ms']} ms | {target} |"
            )
    if thr:
        by_clients = ", ".join(f"{c} clients: {v}/s" for c, v in thr["images_per_second_by_clients"].items())
        stab = thr["memory_stability"]
        rows += [
            f"| throughput, one server process (mixed photos) | {by_clients} | |",
            f"| peak resident memory of the serving process | {thr['peak_rss_mb']} MB "
            f"(instance PSS after load {thr['instance_pss_after_load_mb']} MB) | <= 150 MB |",
            f"| memory after 200 / 2,000 requests | {stab['rss_after_200_mb']} / {stab['rss_after_2000_mb']} MB "
            f"({stab['growth']:+.1%}) | within 10% |",
        ]
    if clf:
        per_face = clf["per_face_ms_one_thread"]
        rows += [
            f"| classifier per face, one thread | {per_face['batch_1']} ms (batch 1), {per_face['batch_32']} ms "
            "(batch 32) | <= 2 ms |",
            f"| classifier load (import + model) | {clf['load_s_median']} s, {clf['load_max_rss_mb_median']} MB "
            "| < 0.2 s, < 80 MB |",
            f"| model file | {clf['model']['bytes'] / 1e6:.2f} MB ({clf['model']['quantization']}) | <= 8 MB |",
        ]
    return "\n".join(rows)


def tiers_tables() -> str:
    """The per-tier figures, the start-up breakdown and the cost of 1,000 photos, from ``tiers.json``."""
    data = _load("tiers")
    if not data:
        return "(run `python -m bench.tiers`)"
    tiers = data["tiers"]
    photos = list(next(iter(tiers.values()))["warm"])
    rows = [
        f"CPU: {data['cpu']}; {data['runs']} runs per tier, {data['requests']} timed requests per photo and run, "
        f"{data['gap_s']} s apart; medians over the runs. Latency over HTTP, preview included.",
        "",
        "| tier | cold start (runs) | "
        + " | ".join(f"{SHORT[p]} p50 / p95" for p in photos)
        + " | astronaut back to back p50 | peak memory |",
        "| --- " * (len(photos) + 4) + "|",
    ]
    for name, t in tiers.items():
        warm = " | ".join(f"{t['warm'][p]['p50_ms']:.0f} / {t['warm'][p]['p95_ms']:.0f} ms" for p in photos)
        runs = ", ".join(f"{s:.2f}" for s in t["cold_start_runs_s"])
        rows.append(
            f"| {name} | **{t['cold_start_s']:.2f} s** ({runs}) | {warm} | {t['busy_astronaut']['p50_ms']:.0f} ms "
            f"| {t['peak_mb']:.0f} MB |"
        )
    steps = list(next(iter(tiers.values()))["breakdown"]["steps"])
    rows += [
        "",
        "Start-up, step by step (`bench/startup.py` under `-X importtime`, wall ms at each tier; CPU ms at the first):",
        "",
        "| step | " + " | ".join(tiers) + f" | CPU, {next(iter(tiers))} |",
        "| --- " * (len(tiers) + 2) + "|",
        "| interpreter start | "
        + " | ".join(f"{t['breakdown']['interpreter_start_ms']:.0f}" for t in tiers.values())
        + " | |",
    ]
    first = next(iter(tiers.values()))["breakdown"]["steps"]
    for step in steps:
        walls = " | ".join(f"{t['breakdown']['steps'][step]['wall_ms']:.0f}" for t in tiers.values())
        rows.append(f"| {step} | {walls} | {first[step]['cpu_ms']:.0f} |")
    by_name = {tier.name: tier for tier in TIERS}
    rows += [
        "",
        f"Cost: request-based billing in Tier 1 regions, ${cost.PRICE_PER_VCPU_SECOND:.6f} per vCPU-second, "
        f"${cost.PRICE_PER_GIB_SECOND:.7f} per GiB-second, ${cost.PRICE_PER_REQUEST * 1e6:.2f} per million requests "
        "(`bench/cost.py` says where and when they were read), before the monthly free tier. A photo billed alone "
        "is its p50 rounded up to 100 ms; on a busy instance, its mean time back to back. A cold start is billed "
        "too, and adds its time to the request that waits for it.",
        "",
        "| tier | $ per instance-second | 1,000 astronaut photos | 1,000 five-face photos "
        "| 1,000 astronaut photos, busy instance | a cold start costs | meets the targets |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, t in tiers.items():
        tier = by_name.get(name)
        if tier is None:
            continue
        warm = t["warm"]
        sporadic = [
            cost.per_thousand(warm[p]["p50_ms"] / 1000, tier.cpu, tier.mem_mib, rounded=True)
            for p in ("astronaut_512x512", "five_faces_1920x1080")
        ]
        busy = cost.per_thousand(t["busy_astronaut"]["mean_ms"] / 1000, tier.cpu, tier.mem_mib, rounded=False)
        cold = t["cold_start_s"] * cost.per_second(tier.cpu, tier.mem_mib)
        missed = [k.replace("_", " ") for k, ok in t["meets_targets"].items() if not ok]
        verdict = "no: " + ", ".join(missed) if missed else "yes"
        rows.append(
            f"| {name} | ${cost.per_second(tier.cpu, tier.mem_mib):.7f} | ${sporadic[0]:.5f} | ${sporadic[1]:.5f} "
            f"| ${busy:.5f} | ${cold:.6f} and {t['cold_start_s']:.1f} s | {verdict} |"
        )
    return "\n".join(rows)


def _replace(text: str, start: str, end: str, body: str) -> str:
    block = f"{start}\n{body}\n{end}"
    return re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)


def main() -> None:
    text = _replace(README.read_text(), START, END, table())
    text = _replace(text, TIERS_START, TIERS_END, tiers_tables())
    README.write_text(text)
    print(tiers_tables())


if __name__ == "__main__":
    main()
