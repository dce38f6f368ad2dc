# Optional: what a Dataflow run of the batch pipeline (python -m emotion.batch, README "Batch analysis")
# needs, with least privilege. Off by default; `enable_batch = true` creates it:
#
#   - the Dataflow and Compute Engine APIs;
#   - a worker service account holding roles/dataflow.worker on the project, read on the uploads bucket
#     and write on the results bucket, and nothing else;
#   - a temp and staging location: a folder of the results bucket (dataflow/), so the workers need no
#     bucket beyond the two above;
#   - the output batch_command: the ready `python -m emotion.batch ... --runner DataflowRunner` line.
#
# The resources live in the module ./batch, so that one count switches the whole part on or off;
# tests/test_infra_batch.py checks them (tests/test_infra.py checks the functions' own resources).

variable "enable_batch" {
  description = "Create what a Dataflow run of the batch pipeline needs (APIs, worker identity and grants, temp location)."
  type        = bool
  default     = false
}

variable "batch_max_workers" {
  description = "Most Dataflow workers the ready batch command lets autoscaling start: the cap on a batch run's spend."
  type        = number
  default     = 10

  validation {
    condition     = var.batch_max_workers >= 1 && var.batch_max_workers <= 1000 && floor(var.batch_max_workers) == var.batch_max_workers
    error_message = "batch_max_workers must be a whole number from 1 to 1000."
  }
}

variable "batch_machine_type" {
  description = "Compute Engine machine type of the Dataflow workers in the ready batch command (one SDK process per vCPU)."
  type        = string
  default     = "n2d-standard-2"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]*-(standard|highcpu|highmem)-[0-9]+$", var.batch_machine_type))
    error_message = "batch_machine_type must be a predefined machine type such as n2d-standard-2 or e2-highcpu-4."
  }
}

module "batch" {
  source = "./batch"
  count  = var.enable_batch ? 1 : 0

  project_id     = var.project_id
  region         = var.region
  name_prefix    = var.name_prefix
  uploads_bucket = google_storage_bucket.data["uploads"].name
  results_bucket = google_storage_bucket.data["results"].name
  results_prefix = var.results_prefix
  max_workers    = var.batch_max_workers
  machine_type   = var.batch_machine_type

  # The worker service account needs the IAM API, which main.tf enables.
  depends_on = [google_project_service.apis]
}

output "batch_service_account" {
  description = "Identity the Dataflow workers of a batch run use (null unless enable_batch)."
  value       = var.enable_batch ? module.batch[0].service_account_email : null
}

output "batch_temp_location" {
  description = "Temp and staging folder of batch runs, in the results bucket (null unless enable_batch)."
  value       = var.enable_batch ? module.batch[0].temp_location : null
}

output "batch_command" {
  description = "Ready command that analyzes every photo in the uploads bucket on Dataflow; run it from the repository root after `make batch` (null unless enable_batch)."
  value       = var.enable_batch ? module.batch[0].command : null
}
