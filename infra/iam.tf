# Identities and the least each one needs. No identity here holds a project-wide storage role.
#
#   runtime  what both functions run as: reads the uploads bucket, writes the results bucket.
#   trigger  what Eventarc delivers storage events as: may receive events and invoke the storage
#            function, nothing else.
#   build    what Cloud Build builds the function image as (new projects no longer give the
#            default build identity enough, and a dedicated one keeps the build off other roles).

resource "google_service_account" "runtime" {
  account_id   = "${var.name_prefix}-runtime"
  display_name = "Emotion Detector functions (runtime)"
  description  = "Runs the HTTP and storage functions: reads uploads, writes results."

  depends_on = [google_project_service.apis]
}

resource "google_service_account" "trigger" {
  account_id   = "${var.name_prefix}-trigger"
  display_name = "Emotion Detector storage trigger"
  description  = "Identity Eventarc uses to deliver storage events to the storage function."

  depends_on = [google_project_service.apis]
}

resource "google_service_account" "build" {
  account_id   = "${var.name_prefix}-build"
  display_name = "Emotion Detector function build"
  description  = "Identity Cloud Build uses to build the functions' container image."

  depends_on = [google_project_service.apis]
}

# --- runtime: the two buckets only --------------------------------------------------------------

# Read the photo a storage event names (get and list; no write, no delete).
resource "google_storage_bucket_iam_member" "runtime_reads_uploads" {
  bucket = google_storage_bucket.data["uploads"].name
  role   = "roles/storage.objectViewer"
  member = google_service_account.runtime.member
}

# roles/storage.objectUser, on this bucket only, rather than objectCreator: the code reads an existing
# result's metadata to make a redelivered event a no-op, and replaces the result of an older photo
# generation with an if-generation-match write, and replacing an object needs storage.objects.delete.
# objectCreator alone can do neither; objectAdmin would add IAM control over objects that is not needed.
resource "google_storage_bucket_iam_member" "runtime_writes_results" {
  bucket = google_storage_bucket.data["results"].name
  role   = "roles/storage.objectUser"
  member = google_service_account.runtime.member
}

# --- trigger: receive events, invoke the storage function ----------------------------------------

# eventarc.events.receiveEvent is granted on the project; Eventarc checks it there.
resource "google_project_iam_member" "trigger_receives_events" {
  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = google_service_account.trigger.member
}

# roles/run.invoker on the storage function's own Cloud Run service (functions.tf), not on the project,
# so the trigger identity cannot call the private HTTP function.

# --- Google's service agents -------------------------------------------------------------------------

# Cloud Storage publishes the bucket's notifications to Pub/Sub, which Eventarc reads: its service agent
# must be allowed to publish. Reading this data source also creates the agent if it does not exist yet.
data "google_storage_project_service_account" "gcs" {
  project = var.project_id

  depends_on = [google_project_service.apis]
}

resource "google_project_iam_member" "gcs_publishes_events" {
  project = var.project_id
  role    = "roles/pubsub.publisher"
  member  = data.google_storage_project_service_account.gcs.member
}

# --- build -----------------------------------------------------------------------------------------

# roles/run.builder is the role Google defines for building functions: push and pull images in Artifact
# Registry, write build logs, read the copied source (storage.objects.get). The source copy lives in a
# bucket Cloud Functions creates on the first deploy (gcf-v2-sources-*), which cannot be named before it
# exists, hence the project-level grant; it reads objects, it cannot write or delete them.
resource "google_project_iam_member" "build_builds_functions" {
  project = var.project_id
  role    = "roles/run.builder"
  member  = google_service_account.build.member
}

# --- the first-apply race ---------------------------------------------------------------------------

# On a new project, enabling Eventarc and Cloud Functions creates their service agents, and new grants
# take a minute or two to be honoured everywhere. Creating the functions straight away fails with
# "Permission denied while using the Eventarc Service Agent" or a build that cannot read its source.
# Both functions depend on this pause, which runs on the first apply only (and again only if the grants
# are recreated). If a very new project still races, run `terraform apply` again: it picks up where it
# stopped.
resource "time_sleep" "iam_propagation" {
  create_duration = var.iam_propagation_wait

  triggers = {
    runtime = google_service_account.runtime.email
    trigger = google_service_account.trigger.email
    build   = google_service_account.build.email
  }

  depends_on = [
    google_project_service.apis,
    google_storage_bucket_iam_member.runtime_reads_uploads,
    google_storage_bucket_iam_member.runtime_writes_results,
    google_project_iam_member.trigger_receives_events,
    google_project_iam_member.gcs_publishes_events,
    google_project_iam_member.build_builds_functions,
  ]
}
