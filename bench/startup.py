"""What a cold instance does before its first answer, step by step, in the order functions-framework does it.

Run by ``bench.tiers`` as ``python -X importtime -m bench.startup PHOTO`` (inside a tier's cgroup): prints one
JSON object with the wall and CPU milliseconds of each step; ``-X importtime`` adds the import-by-import
figures on stderr. Each step imports only what the previous ones left out, so the steps add up.
"""

from __future__ import annotations

import json
import sys
import time

STARTED = time.perf_counter()  # CLOCK_MONOTONIC: comparable with the parent's clock
_CPU = time.process_time()


def main() -> None:
    steps: dict[str, dict[str, float]] = {}
    last = [time.perf_counter(), time.process_time()]

    def step(name: str) -> None:
        now = [time.perf_counter(), time.process_time()]
        steps[name] = {"wall_ms": round((now[0] - last[0]) * 1000, 1), "cpu_ms": round((now[1] - last[1]) * 1000, 1)}
        last[:] = now

    import functions_framework._cli  # flask, werkzeug, click, cloudevents
    import functions_framework._http.gunicorn  # noqa: F401

    step("framework (functions-framework, flask, gunicorn)")
    import numpy  # noqa: F401

    step("numpy")
    import cv2  # noqa: F401

    step("opencv")
    import PIL.Image  # noqa: F401

    step("pillow")
    import ai_edge_litert.interpreter  # noqa: F401

    step("litert")

    step("emotion modules")
    import main as entry  # builds the analyzer: the emotion model and the two face detection networks

    step("model loads (main.py)")
    with open(sys.argv[1], "rb") as photo:
        data = photo.read()
    first = entry.ANALYZER.analyze(data)
    step("first analysis")
    entry.ANALYZER.analyze(data)
    step("second analysis (warm)")
    timing = first.timing_ms.to_json()
    stages = {k: timing[k] for k in ("decode", "detect", "classify")}
    print(
        json.dumps(
            {
                "started": STARTED,
                "cpu_before_main_ms": round(_CPU * 1000, 1),
                "steps": steps,
                "first_analysis_ms": {**stages, "preview_and_result": round(timing["total"] - sum(stages.values()), 3)},
            }
        )
    )


if __name__ == "__main__":
    main()
