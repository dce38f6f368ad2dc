# The batch part of the deployment (see ../batch.tf): created only when enable_batch = true.

terraform {
  required_providers {
    google = {
      source = "hashicorp/google"
    }
  }
}

# Dataflow runs its workers on Compute Engine VMs.
resource "google_project_service" "batch" {
  for_each = toset(["dataflow.googleapis.com", "compute.googleapis.com"])

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

resource "google_service_account" "batch" {
  project      = var.project_id
  account_id   = local.account_id
  display_name = "Emotion Detector batch (Dataflow workers)"
  description  = "Runs the Dataflow workers of python -m emotion.batch: reads uploads, writes results."
}

# What a Dataflow worker VM must hold to take work from the service and report on it. Dataflow checks it
# on the project, where the job runs; it grants no access to any data.
resource "google_project_iam_member" "batch_dataflow_worker" {
  project = var.project_id
  role    = "roles/dataflow.worker"
  member  = google_service_account.batch.member

  depends_on = [google_project_service.batch]
}

# Read (get, list) the photos; no write, no delete.
resource "google_storage_bucket_iam_member" "batch_reads_uploads" {
  bucket = var.uploads_bucket
  role   = "roles/storage.objectViewer"
  member = google_service_account.batch.member
}

# Write results (replacing an older one needs delete, as for the storage function, iam.tf), the summary
# and the temp files, and read the staged package: roles/storage.objectUser on this bucket only.
resource "google_storage_bucket_iam_member" "batch_writes_results" {
  bucket = var.results_bucket
  role   = "roles/storage.objectUser"
  member = google_service_account.batch.member
}

output "service_account_email" {
  description = "The workers' identity."
  value       = google_service_account.batch.email
}

output "temp_location" {
  description = "Temp and staging folder of batch runs."
  value       = local.temp_folder
}

output "command" {
  description = "The ready Dataflow command (run from the repository root with .venv-batch)."
  value       = local.command
}
