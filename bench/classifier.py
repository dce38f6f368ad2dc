"""The classifier alone: load cost (import + model load, fresh process), resident memory, per-face time.

``python -m bench.classifier`` writes ``bench/out/classifier.json``. Targets (issue #2): at most 2 ms per
face on one thread, load under 0.2 s and 80 MB resident, model file at most 8 MB.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

from bench.common import write
from bench.servers import ROOT
from emotion.classifier import EmotionClassifier
from emotion.training.evaluate import per_face_ms

LOAD = """
import json, resource, time
t0 = time.perf_counter()
from emotion.classifier import EmotionClassifier
classifier = EmotionClassifier()
t1 = time.perf_counter()
print(json.dumps({"load_s": t1 - t0, "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    loads = [
        json.loads(
            subprocess.run([sys.executable, "-c", LOAD], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        )
        for _ in range(5)
    ]
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    classifier = EmotionClassifier(num_threads=1)
    card = json.loads((ROOT / "models" / "model.json").read_text())
    write(
        "classifier",
        {
            "model": {
                "file": card["file"],
                "bytes": card["bytes"],
                "quantization": card["quantization"],
                "flip_tta": card["flip_tta"],
                "zoom_tta": card.get("zoom_tta", False),
                "zoom_pixels": list(classifier.info.zoom_pixels),
            },
            "load_s_median": round(statistics.median(x["load_s"] for x in loads), 3),
            "load_max_rss_mb_median": round(statistics.median(x["max_rss_mb"] for x in loads), 1),
            "per_face_ms_one_thread": {f"batch_{b}": per_face_ms(classifier, b) for b in (1, 5, 32)},
        },
    )


if __name__ == "__main__":
    main()
