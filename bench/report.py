"""Render ``bench/out/*.json`` as the results table in ``bench/README.md`` (between the markers)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from bench.common import OUT

README = Path(__file__).resolve().parent / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"


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


def main() -> None:
    text = README.read_text()
    block = f"{START}\n{table()}\n{END}"
    README.write_text(re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S))
    print(block)


if __name__ == "__main__":
    main()
