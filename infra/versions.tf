terraform {
  # 1.5: strcontains() and variable/resource checks used below.
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source = "hashicorp/google"
      # 6.x and 7.x both have build_config.service_account and available_cpu on
      # google_cloudfunctions2_function; 8.x may rename things, so it is opted into by hand.
      version = ">= 6.0.0, < 8.0.0"
    }
    google-beta = {
      source = "hashicorp/google-beta"
      # google_project_service_identity, which creates the Eventarc and Pub/Sub service agents (iam.tf),
      # is only in the beta provider. Same range as google: the two are released together.
      version = ">= 6.0.0, < 8.0.0"
    }
    archive = {
      source = "hashicorp/archive"
      # 2.5 matches `excludes` as glob patterns (doublestar) and refuses to write an empty archive.
      version = ">= 2.5.0, < 3.0.0"
    }
    time = {
      source = "hashicorp/time"
      # time_sleep lets new grants propagate on the first apply (see iam.tf).
      version = ">= 0.9.0, < 1.0.0"
    }
  }
}
