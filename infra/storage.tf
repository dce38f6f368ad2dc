# Three private buckets: photos come in, results go out, and the function source sits apart from both.
# All three: uniform bucket-level access (IAM only, no object ACLs), public access prevention enforced
# (not even a mistaken allUsers grant can expose them), and lifecycle rules so nothing is kept for ever.
#
# The data buckets keep no copy of what is deleted or replaced: no versioning and no soft delete, so a
# photo's life ends with its retention. Cloud Storage would otherwise keep a deleted object 7 days
# (soft delete is on by default) and versioning would keep replaced ones as noncurrent versions. The
# source bucket, which holds only the code, keeps both as a safety net.

locals {
  # The uploads and results buckets differ only in their name and in how long they keep objects.
  data_buckets = {
    # Photos are personal data: deleted upload_retention_days after upload.
    uploads = { name = local.uploads_bucket_name, retention_days = var.upload_retention_days }
    # Result JSON, deleted result_retention_days after it is written. It holds a preview: a reduced copy
    # of the photo with the faces marked, so it is personal data too.
    results = { name = local.results_bucket_name, retention_days = var.result_retention_days }
  }
}

resource "google_storage_bucket" "data" {
  # checkov:skip=CKV_GCP_62: Usage-log buckets are a legacy Cloud Storage feature and would need a fourth bucket, itself unlogged; access is recorded by Cloud Audit Logs instead (admin activity always; turn on Data Access logs for storage.googleapis.com to record reads, see infra/README.md).
  # checkov:skip=CKV_GCP_78: Versioning is off on purpose: these buckets hold photos and results with previews of them, personal data that must not outlive its retention as noncurrent versions. A redelivered event is made harmless by the code (if-generation-match writes), not by old versions.
  for_each = local.data_buckets

  name = each.value.name
  # The storage trigger only sees buckets in its own region, so this is a single region, not a multi-region.
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy

  versioning {
    enabled = false
  }

  # 0 turns soft delete off: a deleted object is gone at once instead of restorable for 7 days.
  soft_delete_policy {
    retention_duration_seconds = 0
  }

  # Customer-managed encryption, when kms_key_name is set (Cloud Storage's service agent may use the key).
  dynamic "encryption" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      default_kms_key_name = encryption.value
    }
  }

  # Delete objects retention_days after they are written.
  lifecycle_rule {
    condition {
      age        = each.value.retention_days
      with_state = "LIVE"
    }
    action {
      type = "Delete"
    }
  }

  # Versions kept while an earlier version of this module had versioning on: removed the day after.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 1
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  lifecycle {
    precondition {
      condition     = var.kms_key_name == null || try(split("/", var.kms_key_name)[3] == var.region, false)
      error_message = "kms_key_name must be a key in ${var.region}, the buckets' region."
    }
  }

  depends_on = [google_project_service.apis, google_kms_crypto_key_iam_member.gcs_uses_key]
}

# Cloud Storage's service agent encrypts and decrypts with the key on the buckets' behalf; the buckets
# are created after this grant, or their creation fails.
resource "google_kms_crypto_key_iam_member" "gcs_uses_key" {
  count = var.kms_key_name == null ? 0 : 1

  crypto_key_id = var.kms_key_name
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = data.google_storage_project_service_account.gcs.member
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

  # Cloud Storage's default, written down: deleted zips can be restored for 7 days.
  soft_delete_policy {
    retention_duration_seconds = 604800
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
