# Emotion Detector on Google Cloud: one `terraform apply` from an empty project to two working functions.
#
#   main.tf          providers, names, settings handed to the code, the APIs
#   sizing.tf        memory, CPU, concurrency and the limits the code enforces, checked against each other
#   storage.tf       the uploads, results and source buckets, and the optional encryption key's grant
#   source_files.tf  which repository files go into the function zip (an allow-list)
#   source.tf        the zip and its upload
#   iam.tf           service accounts, service agents and every role they hold; the build's image repository
#   functions.tf     the HTTP and the storage-triggered function, and who may call them

provider "google" {
  project        = var.project_id
  region         = var.region
  default_labels = local.labels
}

# Used only for google_project_service_identity (iam.tf).
provider "google-beta" {
  project        = var.project_id
  region         = var.region
  default_labels = local.labels
}

# The project number names the bucket Cloud Functions copies the function source into (iam.tf).
data "google_project" "this" {
  project_id = var.project_id

  depends_on = [google_project_service.apis]
}

locals {
  labels = merge(var.labels, {
    app        = "emotion-detector"
    managed-by = "terraform"
  })

  # Cloud Functions runtime for the Python the project targets (3.11); tests/test_infra.py checks both agree.
  python_runtime = "python311"

  # Entry points defined in main.py; the test checks their names and decorators.
  http_entry_point = "analyze_http"
  gcs_entry_point  = "analyze_gcs"

  storage_event_type = "google.cloud.storage.object.v1.finalized"

  # Bucket names are global: the project ID keeps them unique, the prefix keeps copies apart.
  uploads_bucket_name = "${var.project_id}-${var.name_prefix}-uploads"
  results_bucket_name = "${var.project_id}-${var.name_prefix}-results"
  source_bucket_name  = "${var.project_id}-${var.name_prefix}-source"

  # Every environment variable the code reads (emotion/config.py ENV_VARS); the test keeps the two equal.
  code_env_vars = [
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "WHOLE_IMAGE_FALLBACK",
    "DETECT_MAX_SIDE",
    "DETECT_MIN_FACE",
    "MAX_PARALLEL_ANALYSES",
    "INSTANCE_MEMORY_MIB",
    "RESULTS_BUCKET",
    "RESULTS_PREFIX",
    "MAX_EVENT_AGE_SECONDS",
    "CORS_ALLOW_ORIGIN",
    "LOG_LEVEL",
  ]

  # Settings both functions read: the limits chosen for the memory they have (sizing.tf), the log level.
  common_env = merge(local.sizing_env, {
    LOG_LEVEL = var.log_level
  })
  # The HTTP function answers browsers, so it needs the CORS origin; it writes nothing to a bucket.
  http_env = {
    CORS_ALLOW_ORIGIN = var.cors_allow_origin
  }
  # The storage function writes each result to the separate results bucket, never back into the
  # uploads bucket, so a result can never trigger the function again.
  gcs_env = {
    RESULTS_BUCKET        = google_storage_bucket.data["results"].name
    RESULTS_PREFIX        = var.results_prefix
    MAX_EVENT_AGE_SECONDS = tostring(var.max_event_age_seconds)
  }
  managed_env_vars = setunion(keys(local.common_env), keys(local.http_env), keys(local.gcs_env))

  # Google APIs the deployment calls. Disabling them on destroy could break other things in the
  # project, so destroy leaves them on.
  services = toset([
    "artifactregistry.googleapis.com",     # images the build produces
    "cloudbuild.googleapis.com",           # builds the function image from the zip
    "cloudfunctions.googleapis.com",       # the functions
    "cloudresourcemanager.googleapis.com", # project IAM grants
    "eventarc.googleapis.com",             # the storage trigger
    "iam.googleapis.com",                  # service accounts
    "logging.googleapis.com",              # build and function logs
    "pubsub.googleapis.com",               # transport under the storage trigger
    "run.googleapis.com",                  # 2nd gen functions run on Cloud Run
    "storage.googleapis.com",              # buckets
  ])
}

resource "google_project_service" "apis" {
  for_each = local.services

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}
