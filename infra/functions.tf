# Two 2nd gen functions built from the one zip: analyze_http answers requests, analyze_gcs analyzes each
# photo finalized in the uploads bucket. Both scale to zero (min_instance_count = 0), so they cost
# nothing while idle.
#
# They are two resources, not one for_each, on purpose: checkov applies a suppression to every instance
# of a resource, so a for_each would extend the HTTP function's CKV_GCP_124 skip to the storage function
# and stop the scan from proving it internal-only. tests/test_infra.py keeps their shared build and
# service settings equal instead.

resource "google_cloudfunctions2_function" "http" {
  # checkov:skip=CKV_GCP_124: The HTTP function is the public entry point and must accept traffic from the internet (a browser, curl); who may call it is decided by IAM (roles/run.invoker, private unless allow_unauthenticated), not by the network path.
  name        = "${var.name_prefix}-http"
  location    = var.region
  description = "Emotion Detector: POST an image, get faces and emotions back; GET serves the web page."

  build_config {
    runtime           = local.python_runtime
    entry_point       = local.http_entry_point
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.function_source.name
      }
    }
  }

  service_config {
    available_memory                 = var.memory
    available_cpu                    = local.cpu
    min_instance_count               = 0
    max_instance_count               = var.max_instances
    max_instance_request_concurrency = var.concurrency
    timeout_seconds                  = var.timeout_seconds
    ingress_settings                 = "ALLOW_ALL"
    all_traffic_on_latest_revision   = true
    service_account_email            = google_service_account.http.email
    environment_variables            = merge(var.env_overrides, local.common_env, local.platform_env, local.http_env)
  }

  # Checked here once: the storage function below uses the same sizing and overrides.
  lifecycle {
    # Memory, CPU, concurrency and the limits must agree (sizing.tf).
    precondition {
      condition     = length(local.sizing_problems) == 0
      error_message = join(" ", local.sizing_problems)
    }

    precondition {
      condition     = alltrue([for name in keys(var.env_overrides) : contains(local.code_env_vars, name) && !contains(local.managed_env_vars, name)])
      error_message = "env_overrides may only set variables the code reads and Terraform does not manage: ${join(", ", sort(setsubtract(local.code_env_vars, local.managed_env_vars)))}."
    }
  }

  depends_on = [time_sleep.iam_propagation]
}

resource "google_cloudfunctions2_function" "gcs" {
  name        = "${var.name_prefix}-gcs"
  location    = var.region
  description = "Emotion Detector: analyzes each photo uploaded to the uploads bucket and writes a result JSON to the results bucket."

  build_config {
    runtime           = local.python_runtime
    entry_point       = local.gcs_entry_point
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.function_source.name
      }
    }
  }

  service_config {
    available_memory                 = var.memory
    available_cpu                    = local.cpu
    min_instance_count               = 0
    max_instance_count               = var.max_instances
    max_instance_request_concurrency = var.concurrency
    timeout_seconds                  = var.timeout_seconds
    # Eventarc delivers through Pub/Sub, which counts as internal traffic: nothing else can reach it.
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.gcs.email
    environment_variables          = merge(var.env_overrides, local.common_env, local.platform_env, local.gcs_env)
  }

  event_trigger {
    # The trigger must sit in the uploads bucket's region (the bucket is created in var.region).
    trigger_region = var.region
    event_type     = local.storage_event_type
    # A failed delivery (storage unavailable, a lost precondition race, a crash or a timeout) is
    # redelivered with backoff. The code drops events older than MAX_EVENT_AGE_SECONDS, skips photos whose
    # result already exists, and after two failed attempts at one generation (counted in a marker object,
    # crashes and timeouts included) stores an error result instead: retries end and nothing writes twice.
    retry_policy          = "RETRY_POLICY_RETRY"
    service_account_email = google_service_account.trigger.email

    event_filters {
      attribute = "bucket"
      value     = google_storage_bucket.data["uploads"].name
    }
  }

  depends_on = [time_sleep.iam_propagation]
}

# --- who may call what ------------------------------------------------------------------------------

# Eventarc's identity may invoke the storage function, and only it. The grant needs the function's
# Cloud Run service, so it follows the function; events that arrive in the seconds between are refused
# and redelivered by the retry policy.
resource "google_cloud_run_service_iam_member" "trigger_invokes_gcs" {
  project  = var.project_id
  location = google_cloudfunctions2_function.gcs.location
  service  = google_cloudfunctions2_function.gcs.name
  role     = "roles/run.invoker"
  member   = google_service_account.trigger.member
}

# The HTTP function is private: only the listed principals may call it (with an identity token).
resource "google_cloud_run_service_iam_member" "http_invokers" {
  for_each = toset(var.invoker_members)

  project  = var.project_id
  location = google_cloudfunctions2_function.http.location
  service  = google_cloudfunctions2_function.http.name
  role     = "roles/run.invoker"
  member   = each.value
}

# Public only on request.
resource "google_cloud_run_service_iam_member" "http_public" {
  # checkov:skip=CKV_GCP_102: Public access is opt-in: this grant exists only when allow_unauthenticated = true (default false), for a public demo of the web page. The code caps the image size and max_instances caps the spend.
  count = var.allow_unauthenticated ? 1 : 0

  project  = var.project_id
  location = google_cloudfunctions2_function.http.location
  service  = google_cloudfunctions2_function.http.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}
