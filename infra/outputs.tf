output "http_url" {
  description = "HTTPS URL of the HTTP function (private unless allow_unauthenticated: send an identity token)."
  value       = google_cloudfunctions2_function.http.service_config[0].uri
}

output "uploads_bucket" {
  description = "Bucket to upload photos to; each new object is analyzed."
  value       = google_storage_bucket.data["uploads"].name
}

output "results_bucket" {
  description = "Bucket the storage function writes result JSON to."
  value       = google_storage_bucket.data["results"].name
}

output "source_bucket" {
  description = "Bucket holding the function source zips."
  value       = google_storage_bucket.source.name
}

output "results_prefix" {
  description = "Folder in the results bucket that results are written under."
  value       = var.results_prefix
}

output "service_accounts" {
  description = "The module's identities: what each function runs as, what delivers events, what builds."
  value = {
    http    = google_service_account.http.email
    gcs     = google_service_account.gcs.email
    trigger = google_service_account.trigger.email
    build   = google_service_account.build.email
  }
}

output "functions" {
  description = "Names of the two functions, for gcloud functions logs read."
  value = {
    http = google_cloudfunctions2_function.http.name
    gcs  = google_cloudfunctions2_function.gcs.name
  }
}

output "try_http" {
  description = "A ready command that POSTs photo.jpg to the HTTP function with your identity token."
  value = (
    var.allow_unauthenticated
    ? "curl -sS -F image=@photo.jpg '${google_cloudfunctions2_function.http.service_config[0].uri}?preview=false'"
    : "curl -sS -H \"Authorization: Bearer $(gcloud auth print-identity-token)\" -F image=@photo.jpg '${google_cloudfunctions2_function.http.service_config[0].uri}?preview=false'"
  )
}

output "try_upload" {
  description = "Ready commands that upload photo.jpg and, a little later, print its result (the wildcard finds it whether or not the result name carries the source bucket's folder)."
  value       = "gcloud storage cp photo.jpg gs://${google_storage_bucket.data["uploads"].name}/photo.jpg && sleep 30 && gcloud storage cat 'gs://${google_storage_bucket.data["results"].name}/${var.results_prefix}**/photo.jpg.json'"
}

output "smoke_test" {
  description = "The command that checks this deployment end to end (run it from the repository root)."
  value       = "python -m infra.smoke --tf-dir infra"
}

output "try_web_page" {
  description = "Opens the private web page on http://localhost:8080 through a proxy that adds your identity."
  value       = "gcloud run services proxy ${google_cloudfunctions2_function.http.name} --project ${var.project_id} --region ${var.region} --port 8080"
}
