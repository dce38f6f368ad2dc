"""Cold start: process start to first successful response, split into imports, model load and first
request, against the bare ``import tensorflow`` a TensorFlow-served function would pay first.

``python -m bench.cold_start [--runs N]`` writes ``bench/out/cold_start.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from bench.common import write
from bench.images import PHOTOS
from bench.servers import ROOT, free_port, start_function, stop

SPLIT = """
import json, sys, time
t0 = time.perf_counter()
import functions_framework, emotion.pipeline, emotion.http_api, emotion.logs  # everything main.py imports
t1 = time.perf_counter()
import main  # builds the analyzer: reads the model, makes the LiteRT interpreters (emotion model, face detectors)
t2 = time.perf_counter()
main.ANALYZER.analyze(open(sys.argv[1], "rb").read())
t3 = time.perf_counter()
print(json.dumps({"imports_ms": (t1 - t0) * 1000, "model_load_ms": (t2 - t1) * 1000,
                  "first_request_ms": (t3 - t2) * 1000, "tensorflow_imported": "tensorflow" in sys.modules}))
"""


def process_seconds(code: str, *args: str) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, done.stdout


def first_response_seconds(photo: bytes) -> float:
    """From spawning functions-framework to the first 200 answer to a real photo."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    start = time.perf_counter()
    process, _ = start_function("analyze_http", port=port)
    try:
        while True:
            try:
                response = requests.post(url, data=photo, headers={"Content-Type": "image/jpeg"}, timeout=30)
                if response.status_code == 200:
                    return time.perf_counter() - start
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.perf_counter() - start > 60:
                raise RuntimeError("the function did not come up")
            time.sleep(0.005)
    finally:
        stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    photo = PHOTOS["one_face_640x480"]()
    photo_file = Path(tempfile.gettempdir()) / "emotion-bench-photo.jpg"
    photo_file.write_bytes(photo)

    tf_process = [process_seconds("import tensorflow")[0] for _ in range(args.runs)]
    tf_import = [
        float(
            process_seconds("import time; t = time.perf_counter(); import tensorflow; print(time.perf_counter() - t)")[
                1
            ]
        )
        for _ in range(args.runs)
    ]
    cold = [first_response_seconds(photo) for _ in range(args.runs)]
    splits = [json.loads(process_seconds(SPLIT, str(photo_file))[1]) for _ in range(args.runs)]

    median = statistics.median
    result = {
        "runs": args.runs,
        "cold_start_to_first_response_s": round(median(cold), 3),
        "python_import_tensorflow_process_s": round(median(tf_process), 3),
        "import_tensorflow_statement_s": round(median(tf_import), 3),
        "ratio_to_import_tensorflow_statement": round(median(cold) / median(tf_import), 3),
        "ratio_to_tensorflow_process": round(median(cold) / median(tf_process), 3),
        "split_ms": {
            key: round(median(s[key] for s in splits), 1) for key in ("imports_ms", "model_load_ms", "first_request_ms")
        },
        "serving_process_imports_tensorflow": any(s["tensorflow_imported"] for s in splits),
        "target": "cold start <= 0.15 x the bare `import tensorflow` of the same run (the stricter of the two)",
    }
    result["meets_target"] = result["ratio_to_import_tensorflow_statement"] <= 0.15
    write("cold_start", result)


if __name__ == "__main__":
    main()
