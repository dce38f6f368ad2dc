variable "project_id" {
  description = "ID of the Google Cloud project to deploy into (it must exist and have billing enabled)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID (6-30 lowercase letters, digits or hyphens), not a project name or number."
  }
}

variable "region" {
  description = "Region for the functions, the Eventarc trigger and the buckets. us-central1, us-east1 and us-west1 fall in Cloud Storage's free tier."
  type        = string
  default     = "us-central1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a single region such as us-central1 or europe-west1: the storage trigger needs the uploads bucket and the trigger in the same region."
  }
}

variable "name_prefix" {
  description = "Prefix for every resource name (functions, service accounts, buckets), so several copies can share a project."
  type        = string
  default     = "emotion"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,14}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-16 lowercase letters, digits or hyphens, starting with a letter: it goes into service account IDs (30 characters at most)."
  }
}

variable "labels" {
  description = "Extra labels for every resource that takes labels."
  type        = map(string)
  default     = {}
}

variable "memory" {
  description = "Memory per function instance; with cpu = null it also sets the vCPU (0.333 at 512Mi). 512Mi is the cheapest tier that meets the latency targets (bench/README.md); 256Mi (0.167 vCPU) costs less per small photo but takes about 2.2 s to start and 340 ms for a 1080p group photo. sizing.tf checks that it holds the measured worst case of the requests in flight (concurrency) and picks MAX_PARALLEL_ANALYSES for it."
  type        = string
  default     = "512Mi"

  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi)$", var.memory))
    error_message = "memory must be a size in Mi or Gi, such as 256Mi or 1Gi."
  }

  validation {
    # try(): the size check must not fail on a malformed value, which the rule above reports.
    condition = try(
      tonumber(regex("^([0-9]+)(Mi|Gi)$", var.memory)[0]) * (endswith(var.memory, "Gi") ? 1024 : 1) >= 256
      && tonumber(regex("^([0-9]+)(Mi|Gi)$", var.memory)[0]) * (endswith(var.memory, "Gi") ? 1024 : 1) <= 32768,
      false
    )
    error_message = "memory must be between 256Mi and 32Gi (Cloud Run's largest)."
  }
}

variable "cpu" {
  description = "vCPUs per instance, as a string (\"0.5\", \"1\", \"2\"). null: the platform's default for the memory size (0.333 at the 512Mi default, 0.167 at 256Mi), raised to 1 when concurrency is above 1, which Cloud Run requires."
  type        = string
  default     = null

  validation {
    # Cloud Run: from 0.08 to 1 in steps of 0.001, or a whole 1, 2, 4, 6 or 8.
    condition = var.cpu == null || try(
      (tonumber(var.cpu) >= 0.08 && tonumber(var.cpu) < 1 && floor(tonumber(var.cpu) * 1000) == tonumber(var.cpu) * 1000)
      || contains([1, 2, 4, 6, 8], tonumber(var.cpu)),
      false
    )
    error_message = "cpu must be from 0.08 to 1 in steps of 0.001, or one of 1, 2, 4, 6 and 8."
  }
}

variable "max_instances" {
  description = "Most instances each function may run at once: the cap on spend and on load during a burst of uploads."
  type        = number
  default     = 3

  validation {
    condition     = var.max_instances >= 1 && var.max_instances <= 100 && floor(var.max_instances) == var.max_instances
    error_message = "max_instances must be a whole number from 1 to 100."
  }
}

variable "concurrency" {
  description = "Requests one instance serves at once (also functions-framework's THREADS, as Google advises for Python). 1 fits the 512Mi default (0.333 vCPU); above 1 needs at least 1 vCPU and the memory sizing.tf asks for."
  type        = number
  default     = 1

  validation {
    # Cloud Run functions take up to 1000; the memory check in sizing.tf bounds it far below that.
    condition     = var.concurrency >= 1 && var.concurrency <= 1000 && floor(var.concurrency) == var.concurrency
    error_message = "concurrency must be a whole number from 1 to 1000."
  }
}

variable "timeout_seconds" {
  description = "Most seconds one request or event may take before the platform stops it."
  type        = number
  default     = 60

  validation {
    condition     = var.timeout_seconds >= 1 && var.timeout_seconds <= 540 && floor(var.timeout_seconds) == var.timeout_seconds
    error_message = "timeout_seconds must be a whole number from 1 to 540 (the limit for event-driven functions)."
  }
}

variable "allow_unauthenticated" {
  description = "Make the HTTP function public (grant roles/run.invoker to allUsers). Off by default: only invoker_members may call it."
  type        = bool
  default     = false
}

variable "invoker_members" {
  description = "Principals allowed to call the HTTP function, such as \"user:you@example.com\" or \"serviceAccount:ci@project.iam.gserviceaccount.com\"."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([
      for member in var.invoker_members :
      can(regex("^(user|group|serviceAccount|domain|principal|principalSet):.+$", member))
    ])
    error_message = "Each invoker must be user:, group:, serviceAccount:, domain:, principal: or principalSet:. To make the function public, set allow_unauthenticated = true instead of listing allUsers."
  }
}

variable "uploader_members" {
  description = "Principals allowed to upload photos: roles/storage.objectCreator on the uploads bucket only (they can neither read nor replace objects, and cannot write the results bucket)."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([
      for member in var.uploader_members :
      can(regex("^(user|group|serviceAccount|domain|principal|principalSet):.+$", member))
    ])
    error_message = "Each uploader must be user:, group:, serviceAccount:, domain:, principal: or principalSet: (never allUsers)."
  }
}

variable "upload_retention_days" {
  description = "Days an uploaded photo is kept before the bucket deletes it (uploads are personal data: keep this short)."
  type        = number
  default     = 7

  validation {
    condition     = var.upload_retention_days >= 1 && var.upload_retention_days <= 3650 && floor(var.upload_retention_days) == var.upload_retention_days
    error_message = "upload_retention_days must be a whole number from 1 to 3650."
  }
}

variable "result_retention_days" {
  description = "Days a result JSON is kept before the bucket deletes it."
  type        = number
  default     = 30

  validation {
    condition     = var.result_retention_days >= 1 && var.result_retention_days <= 3650 && floor(var.result_retention_days) == var.result_retention_days
    error_message = "result_retention_days must be a whole number from 1 to 3650."
  }
}

variable "noncurrent_retention_days" {
  description = "Days an overwritten or deleted function zip survives in the source bucket (the data buckets keep no old versions)."
  type        = number
  default     = 7

  validation {
    condition     = var.noncurrent_retention_days >= 1 && var.noncurrent_retention_days <= 365 && floor(var.noncurrent_retention_days) == var.noncurrent_retention_days
    error_message = "noncurrent_retention_days must be a whole number from 1 to 365."
  }
}

variable "results_prefix" {
  description = "Folder in the results bucket that results are written under (RESULTS_PREFIX)."
  type        = string
  default     = "results/"

  validation {
    condition     = var.results_prefix == "" || can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*/$", var.results_prefix))
    error_message = "results_prefix must be empty or a relative folder ending in /, such as results/."
  }
}

variable "max_image_bytes" {
  description = "Largest image accepted, in bytes (MAX_IMAGE_BYTES). HTTP requests to Cloud Run functions are capped at 32 MiB."
  type        = number
  default     = 20000000

  validation {
    condition     = var.max_image_bytes >= 1024 && var.max_image_bytes <= 32000000 && floor(var.max_image_bytes) == var.max_image_bytes
    error_message = "max_image_bytes must be a whole number from 1024 to 32000000."
  }
}

variable "max_image_pixels" {
  description = "Largest image accepted, in pixels (MAX_IMAGE_PIXELS). It may not exceed the size the worst case in sizing.tf was measured at."
  type        = number
  default     = 40000000

  validation {
    condition     = var.max_image_pixels >= 1 && floor(var.max_image_pixels) == var.max_image_pixels
    error_message = "max_image_pixels must be a positive whole number."
  }
}

variable "max_parallel_analyses" {
  description = "Analyses one instance runs at once (MAX_PARALLEL_ANALYSES). null: the most the memory holds by the measured worst case, at most concurrency."
  type        = number
  default     = null

  validation {
    condition     = var.max_parallel_analyses == null || try(var.max_parallel_analyses >= 1 && floor(var.max_parallel_analyses) == var.max_parallel_analyses, false)
    error_message = "max_parallel_analyses must be null or a positive whole number."
  }
}

variable "max_event_age_seconds" {
  description = "Storage events older than this are dropped instead of retried (MAX_EVENT_AGE_SECONDS), which ends the retry loop of an event that always fails."
  type        = number
  default     = 86400

  validation {
    condition     = var.max_event_age_seconds >= 60 && var.max_event_age_seconds <= 604800 && floor(var.max_event_age_seconds) == var.max_event_age_seconds
    error_message = "max_event_age_seconds must be a whole number from 60 to 604800 (Eventarc retries for at most 7 days)."
  }
}

variable "cors_allow_origin" {
  description = "Value of Access-Control-Allow-Origin on the HTTP function's answers (CORS_ALLOW_ORIGIN)."
  type        = string
  default     = "*"

  validation {
    condition     = var.cors_allow_origin == "*" || can(regex("^https?://[^/]+$", var.cors_allow_origin))
    error_message = "cors_allow_origin must be * or one origin such as https://example.com (scheme and host, no path)."
  }
}

variable "log_level" {
  description = "Log level of both functions (LOG_LEVEL)."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

variable "env_overrides" {
  description = "Other settings the code reads, by environment variable name, such as { DETECT_MIN_FACE = \"64\" }. Names Terraform manages itself (the results bucket and the variables above) are refused."
  type        = map(string)
  default     = {}
}

variable "iam_propagation_wait" {
  description = "How long the first apply waits after enabling the APIs and granting roles before it creates the functions: new service agents and grants take a minute or two to be honoured."
  type        = string
  default     = "120s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.iam_propagation_wait))
    error_message = "iam_propagation_wait must be a number of seconds such as 120s."
  }
}

variable "kms_key_name" {
  description = "Cloud KMS key that encrypts the uploads and results buckets (customer-managed encryption), as projects/P/locations/L/keyRings/R/cryptoKeys/K in the buckets' region. null: Google-managed encryption."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_name == null || can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", var.kms_key_name))
    error_message = "kms_key_name must be a key's full name: projects/P/locations/L/keyRings/R/cryptoKeys/K."
  }
}

variable "force_destroy" {
  description = "Let terraform destroy delete the uploads and results buckets while they still hold objects. Off so that a stray destroy cannot wipe them."
  type        = bool
  default     = false
}

variable "source_dir" {
  description = "Repository root that holds main.py, emotion/ and models/. null: the folder above infra/."
  type        = string
  default     = null
}
