"""The Beam pipeline: list SRC, spread the photos over the workers, analyze each once, write the summary.

    python -m emotion.batch --input SRC --output DST [--overwrite] [--previews]
        [--bigquery-table PROJECT:DATASET.TABLE] [Beam pipeline options, e.g. --runner DataflowRunner]

On this machine it runs on Beam's DirectRunner, one worker process per core unless told otherwise; on
Dataflow the same code runs on autoscaled workers (README: "Batch analysis").
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import apache_beam as beam
import cv2
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions, WorkerOptions
from apache_beam.utils.shared import Shared

from emotion import memory
from emotion.batch.cli import parse_args
from emotion.batch.photos import Location, Photo, list_files
from emotion.batch.results import ANALYZED, FAILED, GONE, SKIPPED, bigquery_schema, open_results, process
from emotion.config import Settings
from emotion.pipeline import Analyzer

log = logging.getLogger("emotion.batch")
NAMESPACE = "emotion.batch"
#: Counters printed at the end (and shown live in the Dataflow console), in this order.
COUNTERS = ("listed", "not_images", ANALYZED, SKIPPED, FAILED, GONE, "faces")
#: A worker logs its progress at most this often, so a long local run visibly moves.
PROGRESS_EVERY_S = 10.0


def storage_client() -> Any:
    """A storage client (it honours STORAGE_EMULATOR_HOST); made on the worker, never pickled."""
    from google.cloud import storage

    return storage.Client()


class ListPhotos(beam.DoFn):
    """SRC → its image files. Listing runs on a worker, so a million names never enter the job graph."""

    def __init__(self, src: str, dst: str) -> None:
        self.src, self.dst = src, dst
        self.listed = Metrics.counter(NAMESPACE, "listed")
        self.not_images = Metrics.counter(NAMESPACE, "not_images")

    def process(self, _: Any) -> Iterator[Photo]:
        src = Location.parse(self.src)
        client = storage_client() if src.bucket is not None else None
        found = 0
        for photo in list_files(src, client, exclude=Location.parse(self.dst)):
            if not photo.looks_like_image():
                self.not_images.inc()
                continue
            found += 1
            self.listed.inc()
            yield photo
        log.info("listed %d photos under %s", found, self.src)


class _Progress:
    """Per-process tally for the progress log line (a worker process runs DoFns on several threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.started = self.reported = time.monotonic()

    def add(self, status: str) -> None:
        with self.lock:
            self.counts[status] = self.counts.get(status, 0) + 1
            due = time.monotonic() - self.reported >= PROGRESS_EVERY_S
        if due:
            self.report()

    def report(self) -> None:
        with self.lock:
            now = self.reported = time.monotonic()
            done = sum(self.counts.values())
            parts = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
            rate = done / max(now - self.started, 1e-9)
        log.info("worker %d: %d photos done (%s), %.1f photos/s", os.getpid(), done, parts, rate)


class _Worker:
    """What one worker process loads once and shares between its threads (``Shared`` needs a weakref-able object)."""

    def __init__(self) -> None:
        # One worker process per core, several DoFn threads each: OpenCV's own threads would oversubscribe.
        cv2.setNumThreads(1)
        memory.configure()
        self.analyzer = Analyzer(Settings.from_env())
        self.progress = _Progress()


_SHARED = Shared()


class AnalyzePhotos(beam.DoFn):
    """Photo → summary row, storing its result. The analyzer is loaded in ``setup``, once per worker process."""

    def __init__(self, src: str, dst: str, *, overwrite: bool, previews: bool) -> None:
        self.src, self.dst, self.overwrite, self.previews = src, dst, overwrite, previews
        self.counters = {name: Metrics.counter(NAMESPACE, name) for name in (ANALYZED, SKIPPED, FAILED, GONE)}
        self.faces = Metrics.counter(NAMESPACE, "faces")

    def setup(self) -> None:
        self.worker = _SHARED.acquire(_Worker)
        dst = Location.parse(self.dst)
        in_buckets = dst.bucket is not None or Location.parse(self.src).bucket is not None
        self.client = storage_client() if in_buckets else None
        self.results = open_results(dst, self.client)

    def process(self, photo: Photo) -> Iterator[dict[str, Any]]:
        row, _ = process(
            photo, self.worker.analyzer, self.results, self.client, overwrite=self.overwrite, previews=self.previews
        )
        self.counters[row["status"]].inc()
        self.faces.inc(row["faces"] or 0)
        self.worker.progress.add(row["status"])
        yield row

    def finish_bundle(self) -> None:
        self.worker.progress.report()


def build(pipeline: beam.Pipeline, args: argparse.Namespace, run_id: str) -> None:
    """The graph: list → reshuffle (spreads the photos over all workers) → analyze → summary (+ BigQuery)."""
    rows = (
        pipeline
        | "Start" >> beam.Create([args.input])
        | "List" >> beam.ParDo(ListPhotos(args.input, args.output))
        | "Spread" >> beam.Reshuffle()
        | "Analyze"
        >> beam.ParDo(AnalyzePhotos(args.input, args.output, overwrite=args.overwrite, previews=args.previews))
    )
    dst = Location.parse(args.output)
    (
        rows
        | "ToJson" >> beam.Map(json.dumps)
        | "Summary" >> beam.io.WriteToText(dst.uri(f"summary-{run_id}"), file_name_suffix=".jsonl")
    )
    if args.bigquery_table:
        rows | "BigQuery" >> beam.io.WriteToBigQuery(
            args.bigquery_table,
            schema=bigquery_schema(),
            create_disposition=beam.io.BigQueryDisposition.CREATE_IF_NEEDED,
            write_disposition=beam.io.BigQueryDisposition.WRITE_APPEND,
        )


def pipeline_options(beam_args: list[str]) -> PipelineOptions:
    """Beam's options, with local defaults: one worker process per core, and quiet workers."""
    options = PipelineOptions(beam_args)
    given = " ".join(beam_args)
    runner = options.view_as(StandardOptions).runner
    if runner is None or "direct" in str(runner).lower():
        direct = options.view_as(DirectOptions)
        if "--direct_running_mode" not in given:
            direct.direct_running_mode = "multi_processing"
        if "--direct_num_workers" not in given:
            direct.direct_num_workers = os.cpu_count() or 1
    if "--default_sdk_harness_log_level" not in given:
        # Workers log only warnings, and this pipeline's own progress lines.
        worker = options.view_as(WorkerOptions)
        worker.default_sdk_harness_log_level = "WARNING"
        worker.sdk_harness_log_level_overrides = {"emotion.batch": "INFO"}
    return options


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("apache_beam", "google", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args, beam_args = parse_args(argv)
    options = pipeline_options(beam_args)
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    pipeline = beam.Pipeline(options=options)
    build(pipeline, args, run_id)
    result = pipeline.run()
    result.wait_until_finish()
    totals = counter_totals(result)
    print(
        json.dumps(
            {
                "state": str(result.state),
                "summary": Location.parse(args.output).uri(f"summary-{run_id}-*.jsonl"),
                **totals,
            }
        ),
        flush=True,
    )
    return 0


def counter_totals(result: Any) -> dict[str, int]:
    """Our counters' final values (committed where the runner reports them, else attempted)."""
    totals = dict.fromkeys(COUNTERS, 0)
    for counter in result.metrics().query(beam.metrics.MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        totals[counter.key.metric.name] += value or 0
    return totals
