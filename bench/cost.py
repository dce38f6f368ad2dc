"""What 1,000 photos cost at each tier: Cloud Run's list prices times the time measured by ``bench.tiers``.

Cloud Run functions (2nd gen) are billed as Cloud Run services with request-based billing: an instance is
billed, CPU and memory, while it starts and while it serves a request, in steps of 100 ms. With concurrency
1 and sporadic traffic every request is billed on its own, so its time is rounded up to 100 ms; on a busy
instance the requests follow each other and the time is billed as it runs. Figures are before the monthly
free tier (180,000 vCPU-seconds, 360,000 GiB-seconds, 2 million requests).
"""

from __future__ import annotations

import math

#: Tier 1 regions (us-central1 among them), request-based billing. Source: the stored copy of
#: https://cloud.google.com/run/pricing read through the project's search tool on 2026-11-27 (the copy
#: itself is undated); the memory and request prices match third-party summaries of 2025.
PRICE_PER_VCPU_SECOND = 0.000024
PRICE_PER_GIB_SECOND = 0.0000025
PRICE_PER_REQUEST = 0.40 / 1_000_000
#: Instance-based billing (CPU always allocated), for comparison: no per-request fee.
INSTANCE_PRICE_PER_VCPU_SECOND = 0.000018
INSTANCE_PRICE_PER_GIB_SECOND = 0.000002
BILLING_STEP_S = 0.1


def per_second(cpu: float, mem_mib: int) -> float:
    """Dollars per second of one instance at ``cpu`` vCPU and ``mem_mib`` MiB, request-based billing."""
    return cpu * PRICE_PER_VCPU_SECOND + mem_mib / 1024 * PRICE_PER_GIB_SECOND


def per_thousand(seconds: float, cpu: float, mem_mib: int, *, rounded: bool) -> float:
    """Dollars for 1,000 requests of ``seconds`` each, billed alone (``rounded``) or back to back."""
    billed = math.ceil(round(seconds / BILLING_STEP_S, 6)) * BILLING_STEP_S if rounded else seconds
    return 1000 * (billed * per_second(cpu, mem_mib) + PRICE_PER_REQUEST)
