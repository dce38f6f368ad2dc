# Memory, CPU, concurrency and the limits the code enforces, chosen together and checked against the
# measured worst case, so that no accepted input can exhaust an instance.
#
# This file holds locals only and reads nothing but variables, so that tests/test_infra.py can evaluate
# it with `terraform console` offline. Both functions refuse to plan while sizing_problems is not empty
# (a precondition in functions.tf).

locals {
  # Measured figures of the serving process, in MB (10^6 bytes). One number changes in one place.
  measured_memory = {
    # The worker with the models loaded and a few requests served (bench/README.md).
    base_mb = 110
    # What the instance needs besides the worker: functions-framework's parent process.
    runtime_mb = 28
    # What the code reserves for one analysis at the measured_at limits (emotion/config.py check_memory):
    # the file plus 34 MB (10 MB pipeline, 24 MB the least a decoder is given), or 8/3 of the file while
    # a JSON body is parsed: max(20 + 34, 20 x 8/3) = 54. The worst accepted input measured peaked 22 MB
    # above the base (bench/README.md, worst cases), well inside it.
    per_analysis_mb = 54
    # The limits the per-analysis figure was measured at: larger ones are not covered by it.
    measured_at = { max_image_bytes = 20000000, max_image_pixels = 40000000 }
  }

  memory_mib = tonumber(regex("^([0-9]+)(Mi|Gi)$", var.memory)[0]) * (endswith(var.memory, "Gi") ? 1024 : 1)
  memory_mb  = local.memory_mib * 1.048576

  # Requests in flight hold their bodies; at most max_parallel_analyses of them are being analyzed, the
  # others wait with their body only. Unless set, the parallel analyses are the most the memory holds,
  # and never more than the requests an instance takes at once.
  body_mb = var.max_image_bytes / 1000000
  parallel_analyses = var.max_parallel_analyses != null ? var.max_parallel_analyses : max(1, min(var.concurrency, floor(
    (local.memory_mb - local.measured_memory.base_mb - local.measured_memory.runtime_mb - var.concurrency * local.body_mb)
    / max(local.measured_memory.per_analysis_mb - local.body_mb, 1)
  )))
  # Counted as the code counts it (emotion/config.py shares the memory by MAX_PARALLEL_ANALYSES), so that
  # Terraform never passes limits the code would refuse at start-up.
  waiting_bodies = max(var.concurrency - local.parallel_analyses, 0)
  worst_case_mb = (
    local.measured_memory.base_mb + local.measured_memory.runtime_mb
    + local.parallel_analyses * local.measured_memory.per_analysis_mb
    + local.waiting_bodies * local.body_mb
  )

  # Cloud Run functions' default vCPU for each memory size, used when var.cpu is null:
  # https://cloud.google.com/functions/docs/configuring/memory. The page lists these sizes only; a size
  # between two rows is assumed to get the next row's CPU: set cpu for such a size to be sure.
  default_cpu_by_memory_mib = [[128, 0.083], [256, 0.167], [512, 0.333], [1024, 0.583], [2048, 1], [4096, 2], [8192, 2], [16384, 4], [32768, 8]]
  platform_default_cpu      = [for row in local.default_cpu_by_memory_mib : row[1] if row[0] >= local.memory_mib][0]
  # Concurrency above 1 needs at least 1 vCPU: raise a fractional default to 1, keep a larger one.
  cpu           = var.cpu != null ? var.cpu : (var.concurrency > 1 && local.platform_default_cpu < 1 ? "1" : null)
  effective_cpu = local.cpu != null ? tonumber(local.cpu) : local.platform_default_cpu

  # Whole vCPUs and the memory each allows, [least, most] in MiB:
  # https://cloud.google.com/run/docs/configuring/services/cpu (CPU and memory table).
  memory_mib_by_whole_cpu = { "1" = [128, 4096], "2" = [128, 8192], "4" = [2048, 16384], "6" = [4096, 24576], "8" = [4096, 32768] }

  sizing_problems = compact([
    # https://cloud.google.com/functions/docs/configuring/concurrency and the CPU page above: with less
    # than 1 vCPU, concurrency must be 1.
    var.concurrency > 1 && local.effective_cpu < 1 ? "concurrency ${var.concurrency} needs at least 1 vCPU (cpu = ${local.effective_cpu}): set cpu = \"1\" or leave it null." : "",
    # The CPU page: below 1 vCPU, more than 512 MiB needs at least 0.5 vCPU and more than 1 GiB needs 1.
    local.effective_cpu < 1 && ((local.memory_mib > 512 && local.effective_cpu < 0.5) || local.memory_mib > 1024) ? "${var.memory} needs more than ${local.effective_cpu} vCPU (0.5 above 512Mi, 1 above 1Gi)." : "",
    local.effective_cpu >= 1 && !contains(keys(local.memory_mib_by_whole_cpu), tostring(local.effective_cpu)) ? "cpu above 1 must be 1, 2, 4, 6 or 8." : "",
    local.effective_cpu >= 1 && try(local.memory_mib < local.memory_mib_by_whole_cpu[tostring(local.effective_cpu)][0] || local.memory_mib > local.memory_mib_by_whole_cpu[tostring(local.effective_cpu)][1], false) ? "${local.effective_cpu} vCPU allows ${jsonencode(local.memory_mib_by_whole_cpu[tostring(local.effective_cpu)])} MiB of memory, not ${var.memory}." : "",
    var.max_image_bytes > local.measured_memory.measured_at.max_image_bytes || var.max_image_pixels > local.measured_memory.measured_at.max_image_pixels ? "max_image_bytes and max_image_pixels may not exceed the limits the worst case was measured at (${local.measured_memory.measured_at.max_image_bytes} bytes, ${local.measured_memory.measured_at.max_image_pixels} pixels)." : "",
    local.worst_case_mb > local.memory_mb ? "${var.memory} (${floor(local.memory_mb)} MB) cannot hold the worst case of ${ceil(local.worst_case_mb)} MB: ${local.measured_memory.base_mb} MB base + ${local.measured_memory.runtime_mb} MB runtime + ${local.parallel_analyses} analyses x ${local.measured_memory.per_analysis_mb} MB + ${local.waiting_bodies} waiting bodies x ${local.body_mb} MB. Raise memory, or lower concurrency, max_parallel_analyses or max_image_bytes." : "",
  ])

  # What the code reads to enforce the limits (emotion/config.py), chosen for this memory.
  sizing_env = {
    MAX_IMAGE_BYTES       = tostring(var.max_image_bytes)
    MAX_IMAGE_PIXELS      = tostring(var.max_image_pixels)
    MAX_PARALLEL_ANALYSES = tostring(local.parallel_analyses)
    INSTANCE_MEMORY_MIB   = tostring(local.memory_mib)
  }

  # Read by functions-framework, not by the code: the threads of its one process that serve requests.
  # Google's advice for Python: as many threads as the concurrency
  # (https://cloud.google.com/functions/docs/configuring/concurrency).
  platform_env = { THREADS = tostring(var.concurrency) }
}
