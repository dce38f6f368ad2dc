# Three private buckets: photos come in, results go out, and the function source sits apart from both.
# All three: uniform bucket-level access (IAM only, no object ACLs), public access prevention enforced
# (not even a mistaken allUsers grant can expose them), versioning (an overwrite or delete can be undone
# for noncurrent_retention_days), and lifecycle rules so nothing is kept for ever.

locals {
  # The uploads and results buckets differ only in their name and in how long they keep live objects.
  data_buckets = {
    # Photos are personal data: deleted upload_retention_days after upload.
    uploads = { name = local.uploads_bucket_name, retention_days = var.upload_retention_days }
    # Result JSON, deleted result_retention_days after it is written.
    results = { name = local.results_bucket_name, retention_days = var.result_retention_days }
  }
}

resource "google_storage_bucket" "data" {
  # checkov:skip=CKV_GCP_62: Usage-log buckets are a legacy Cloud Storage feature and would need a fourth bucket, itself unlogged; access is recorded by Cloud Audit Logs instead (admin activity always; turn on Data Access logs for storage.googleapis.com to record reads, see infra/README.md).
  for_each = local.data_buckets

  name = each.value.name
  # The storage trigger only sees buckets in its own region, so this is a single region, not a multi-region.
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy

  versioning {
    enabled = true
  }

  # Delete live objects retention_days after they are written. With versioning on, the delete makes the
  # live version noncurrent, and the rule below removes it for good.
  lifecycle_rule {
    condition {
      age        = each.value.retention_days
      with_state = "LIVE"
    }
    action {
      type = "Delete"
    }
  }

  # A deleted photo, or a result overwritten when a redelivered event brings a newer generation of its
  # photo, survives as a noncurrent version for noncurrent_retention_days.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_retention_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

# These two buckets were separate resources before; the moves keep existing ones (and their objects)
# instead of replacing them.
moved {
  from = google_storage_bucket.uploads
  to   = google_storage_bucket.data["uploads"]
}

moved {
  from = google_storage_bucket.results
  to   = google_storage_bucket.data["results"]
}

resource "google_storage_bucket" "source" {
  # checkov:skip=CKV_GCP_62: Usage-log buckets are a legacy Cloud Storage feature and would need a fourth bucket, itself unlogged; access is recorded by Cloud Audit Logs instead (admin activity always; turn on Data Access logs for storage.googleapis.com to record reads, see infra/README.md).
  name                        = local.source_bucket_name
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  # Holds only zips that Terraform builds from the repository, so destroy may always empty it.
  force_destroy = true

  versioning {
    enabled = true
  }

  # Each code change uploads a zip under a new name and deletes the old one, which versioning keeps as
  # noncurrent: drop those after noncurrent_retention_days.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_retention_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}
