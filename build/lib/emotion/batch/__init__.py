"""Batch analysis of photos that already exist (a folder, a bucket) with Apache Beam: ``python -m emotion.batch``.

Only ``pipeline`` imports Beam; ``photos`` and ``results`` hold the listing, reading, skip and write rules
without it, so the serving package never loads Beam and those rules are tested on their own.
"""
