"""Command line: ``python -m emotion PHOTO... [--preview-dir DIR]`` prints one JSON result per line.

For trying the model without a server. Previews are written as JPEG files (not printed) when asked.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from emotion.config import Settings
from emotion.errors import EmotionError
from emotion.pipeline import Analyzer
from emotion.result import Failure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emotion", description="Find faces and their emotions in photos.")
    parser.add_argument("photos", nargs="+", type=Path, help="image files (JPEG, PNG, WebP, BMP, TIFF, GIF)")
    parser.add_argument("--preview-dir", type=Path, help="write an annotated PHOTO.preview.jpg for each photo here")
    args = parser.parse_args(argv)

    analyzer = Analyzer(Settings.from_env())
    if args.preview_dir:
        args.preview_dir.mkdir(parents=True, exist_ok=True)
    failures = 0
    for photo in args.photos:
        line: dict[str, Any] = {"file": str(photo)}
        try:
            result = analyzer.analyze(photo.read_bytes(), preview=args.preview_dir is not None)
        except EmotionError as exc:
            failures += 1
            line |= Failure.of(exc).to_json()
        except OSError as exc:
            failures += 1
            line |= Failure("unreadable_file", str(exc)).to_json()
        else:
            if result.preview is not None and args.preview_dir:
                target = args.preview_dir / f"{photo.name}.preview.jpg"
                target.write_bytes(result.preview.jpeg)
                line["preview_file"] = str(target)
            line |= dataclasses.replace(result, preview=None).to_json()
        print(json.dumps(line), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
