"""Command line: ``python -m emotion PHOTO... [--preview-dir DIR]`` prints one JSON result per line.

For trying the model without a server. Previews are written as JPEG files (not printed) when asked.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path

from emotion.config import Settings
from emotion.errors import EmotionError
from emotion.pipeline import Analyzer


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
        line: dict = {"file": str(photo)}
        try:
            result = analyzer.analyze(photo.read_bytes(), preview=args.preview_dir is not None)
        except (OSError, EmotionError) as exc:
            failures += 1
            code = exc.code if isinstance(exc, EmotionError) else "unreadable_file"
            line["error"] = {"code": code, "message": str(exc)}
        else:
            preview = result.pop("preview", None)
            if preview and args.preview_dir:
                target = args.preview_dir / f"{photo.name}.preview.jpg"
                target.write_bytes(base64.b64decode(preview["base64"]))
                line["preview_file"] = str(target)
            line |= result
        print(json.dumps(line), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
