# Identities, and the least each one needs. No identity here holds a storage role on every bucket of the
# project: the build's one project-level storage grant is conditioned to the bucket of function sources.
#
#   http     runs the HTTP function, which parses untrusted images from the internet: no role at all, so
#            that a compromised instance can read no photo and write nowhere.
#   gcs      runs the storage function: reads the uploads bucket, writes the results bucket.
#   trigger  what Eventarc delivers storage events as: may receive events and invoke the storage function.
#   build    what Cloud Build builds the function image as: writes build logs, pushes images to the
#            module's own repository, reads the function source.
#
# Google's service agents that the storage trigger needs are created here and granted their roles before
# the functions are (see "Service agents" below), so a first apply on a new project succeeds.

resource "google_service_account" "http" {
  account_id   = "${var.name_prefix}-http"
  display_name = "Emotion Detector HTTP function"
  description  = "Runs the internet-facing HTTP function. Holds no role: it reads and writes no bucket."

  depends_on = [google_project_service.apis]
}

resource "google_service_account" "gcs" {
  account_id   = "${var.name_prefix}-gcs"
  display_name = "Emotion Detector storage function"
  description  = "Runs the storage function: reads uploads, writes results."

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

# --- gcs: the two data buckets only --------------------------------------------------------------

# Read the photo a storage event names (get and list; no write, no delete).
resource "google_storage_bucket_iam_member" "gcs_reads_uploads" {
  bucket = google_storage_bucket.data["uploads"].name
  role   = "roles/storage.objectViewer"
  member = google_service_account.gcs.member
}

# roles/storage.objectUser, on this bucket only, rather than objectCreator: the code reads an existing
# result's metadata to make a redelivered event a no-op, and replaces the result of an older photo
# generation with an if-generation-match write, and replacing an object needs storage.objects.delete.
# objectCreator alone can do neither; objectAdmin would add IAM control over objects that is not needed.
resource "google_storage_bucket_iam_member" "gcs_writes_results" {
  bucket = google_storage_bucket.data["results"].name
  role   = "roles/storage.objectUser"
  member = google_service_account.gcs.member
}

# --- uploaders: create objects in the uploads bucket, nothing else -----------------------------------

# objectCreator: upload new photos; no read, no list, no overwrite or delete, and nothing on the results
# bucket, which only the storage function writes (so no uploader can plant or alter a result).
resource "google_storage_bucket_iam_member" "uploaders" {
  for_each = toset(var.uploader_members)

  bucket = google_storage_bucket.data["uploads"].name
  role   = "roles/storage.objectCreator"
  member = each.value
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

# --- build: logs, its own image repository, the function source --------------------------------------

# The functions' images go to a repository of this module's own (build_config.docker_repository), so the
# build's write access is scoped to it instead of the project's gcf-artifacts. Old images are deleted: the
# newest few of each function stay (KEEP wins over DELETE), any other version goes after a week.
resource "google_artifact_registry_repository" "functions" {
  # checkov:skip=CKV_GCP_84: The images hold the repository's public code, the model and open-source packages, no personal data; customer-managed keys (kms_key_name) protect the data buckets, where the photos are.
  location      = var.region
  repository_id = "${var.name_prefix}-functions"
  format        = "DOCKER"
  description   = "Images Cloud Build makes of the Emotion Detector functions."

  cleanup_policy_dry_run = false

  cleanup_policies {
    id     = "keep-newest"
    action = "KEEP"
    most_recent_versions {
      keep_count = 5
    }
  }

  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      tag_state  = "ANY"
      older_than = "604800s"
    }
  }

  depends_on = [google_project_service.apis]
}

# Push (and pull) images in that repository only.
resource "google_artifact_registry_repository_iam_member" "build_pushes_images" {
  project    = google_artifact_registry_repository.functions.project
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.build.member
}

# Build logs go to Cloud Logging, which grants log writing on the project.
resource "google_project_iam_member" "build_writes_logs" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.build.member
}

# The zip Terraform uploads (Cloud Functions may read it from here).
resource "google_storage_bucket_iam_member" "build_reads_source" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectViewer"
  member = google_service_account.build.member
}

# Cloud Functions copies the zip into a bucket it creates on the first deploy,
# gcf-v2-sources-PROJECT_NUMBER-REGION (with a key hash appended when it uses a customer key), and the
# build reads it there. The bucket does not exist before the first deploy, so the grant is made on the
# project, with a condition that limits it to that bucket's name: no other bucket's objects are readable.
resource "google_project_iam_member" "build_reads_function_sources" {
  project = var.project_id
  role    = "roles/storage.objectViewer"
  member  = google_service_account.build.member

  condition {
    title       = "function-sources-bucket-only"
    description = "Only the bucket Cloud Functions copies function sources into."
    expression  = "resource.name.startsWith(\"projects/_/buckets/gcf-v2-sources-${data.google_project.this.number}-${var.region}\")"
  }
}

# --- Service agents ----------------------------------------------------------------------------------

# Eventarc's service agent manages the trigger's Pub/Sub plumbing. Enabling the API does not reliably
# create it, and without it (and its role) the trigger fails with "Permission denied while using the
# Eventarc Service Agent" on a new project. The identity resource makes it exist; the grant gives it the
# role Google documents for it.
resource "google_project_service_identity" "eventarc" {
  provider = google-beta

  project = var.project_id
  service = "eventarc.googleapis.com"

  depends_on = [google_project_service.apis]
}

resource "google_project_iam_member" "eventarc_agent" {
  # checkov:skip=CKV_GCP_49: roles/eventarc.serviceAgent is the role Google defines for its own Eventarc service agent, which must act for the trigger identity to deliver events; it is granted to that agent only, never to an identity of ours.
  project = var.project_id
  role    = "roles/eventarc.serviceAgent"
  member  = google_project_service_identity.eventarc.member
}

# Pub/Sub pushes each event to the function with an identity token of the trigger identity, which its
# service agent mints. Projects created before April 2021 lack that permission; granting it on the
# trigger identity alone (not the project) makes any project work without letting it sign for others.
resource "google_project_service_identity" "pubsub" {
  provider = google-beta

  project = var.project_id
  service = "pubsub.googleapis.com"

  depends_on = [google_project_service.apis]
}

resource "google_service_account_iam_member" "pubsub_signs_for_trigger" {
  service_account_id = google_service_account.trigger.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = google_project_service_identity.pubsub.member
}

# Cloud Storage publishes the bucket's notifications to the Pub/Sub topic Eventarc creates, so its service
# agent must be allowed to publish (on the project: the topic is made by Eventarc, not here). Reading
# this data source also creates the agent if it does not exist yet.
data "google_storage_project_service_account" "gcs" {
  project = var.project_id

  depends_on = [google_project_service.apis]
}

resource "google_project_iam_member" "gcs_publishes_events" {
  project = var.project_id
  role    = "roles/pubsub.publisher"
  member  = data.google_storage_project_service_account.gcs.member
}

# --- the first apply ---------------------------------------------------------------------------------

# Every identity above exists and holds its roles before the functions are created (they depend on this),
# and new grants get time to be honoured everywhere: IAM changes usually apply within two minutes.
# The pause runs on the first apply only, and again only if an identity is recreated.
resource "time_sleep" "iam_propagation" {
  create_duration = var.iam_propagation_wait

  triggers = {
    http     = google_service_account.http.email
    gcs      = google_service_account.gcs.email
    trigger  = google_service_account.trigger.email
    build    = google_service_account.build.email
    eventarc = google_project_service_identity.eventarc.email
    pubsub   = google_project_service_identity.pubsub.email
  }

  depends_on = [
    google_project_service.apis,
    google_storage_bucket_iam_member.gcs_reads_uploads,
    google_storage_bucket_iam_member.gcs_writes_results,
    google_project_iam_member.trigger_receives_events,
    google_artifact_registry_repository_iam_member.build_pushes_images,
    google_project_iam_member.build_writes_logs,
    google_storage_bucket_iam_member.build_reads_source,
    google_project_iam_member.build_reads_function_sources,
    google_project_iam_member.eventarc_agent,
    google_service_account_iam_member.pubsub_signs_for_trigger,
    google_project_iam_member.gcs_publishes_events,
  ]
}
