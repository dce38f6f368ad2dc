"""The command line of ``python -m emotion.batch``: our options, checked before Beam starts; the rest go to Beam.

No Beam here, so a wrong argument fails in a fraction of a second and the checks are tested on their own.
"""

from __future__ import annotations

import argparse
import os
import re

from emotion.batch.photos import Location

_TABLE = re.compile(r"^[A-Za-z0-9-]+[:.][A-Za-z0-9_]+\.[A-Za-z0-9_$-]+$")


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    """Our options, and the pipeline options left for Beam (``--runner``, ``--project``...)."""
    parser = argparse.ArgumentParser(
        prog="python -m emotion.batch",
        description="Analyze every photo in a folder or bucket with Apache Beam; other options go to Beam.",
    )
    parser.add_argument("--input", required=True, help="photos/, 'photos/**/*.jpg', gs://bucket/photos/, 'gs://b/**'")
    parser.add_argument("--output", required=True, help="folder or gs:// prefix for DST/<name>.json and summaries")
    parser.add_argument("--overwrite", action="store_true", help="redo photos whose result is already current")
    parser.add_argument("--previews", action="store_true", help="keep the annotated preview in each result")
    parser.add_argument("--bigquery-table", help="also append the summary rows to PROJECT:DATASET.TABLE")
    args, beam_args = parser.parse_known_args(argv)
    try:
        src, dst = Location.parse(args.input), Location.parse(args.output)
    except ValueError as exc:
        parser.error(str(exc))
    if dst.glob is not None:
        parser.error("--output must be a folder or gs:// prefix, not a glob")
    if src.bucket is None and not os.path.isdir(src.base):
        parser.error(f"--input: no folder {src.base}")
    if args.bigquery_table and not _TABLE.match(args.bigquery_table):
        parser.error("--bigquery-table must be PROJECT:DATASET.TABLE")
    runner = argparse.ArgumentParser(add_help=False)
    runner.add_argument("--runner", default="")
    local = [f"--{name}" for name, where in (("input", src), ("output", dst)) if where.bucket is None]
    if "dataflow" in runner.parse_known_args(beam_args)[0].runner.lower() and local:
        parser.error(f"Dataflow workers cannot see this machine's files: {' and '.join(local)} must be gs://")
    return args, beam_args
