# The ready command that runs the batch pipeline on Dataflow, as the worker identity (main.tf), with its
# temp and staging files in a folder of the results bucket, so the workers need no third bucket.

locals {
  account_id = "${var.name_prefix}-batch"
  # A service account's email is its ID at the project's IAM domain.
  service_account_email = "${local.account_id}@${var.project_id}.iam.gserviceaccount.com"

  # Temp files (the summary's shards before their rename, BigQuery load files) and the staged package.
  temp_folder      = "gs://${var.results_bucket}/dataflow/"
  temp_location    = "${local.temp_folder}temp"
  staging_location = "${local.temp_folder}staging"

  command = join(" ", [
    ".venv-batch/bin/python -m emotion.batch",
    "--input gs://${var.uploads_bucket}/",
    "--output gs://${var.results_bucket}/${var.results_prefix}",
    "--runner DataflowRunner",
    "--project ${var.project_id}",
    "--region ${var.region}",
    "--service_account_email ${local.service_account_email}",
    "--temp_location ${local.temp_location}",
    "--staging_location ${local.staging_location}",
    "--setup_file ./pyproject.toml",
    "--max_num_workers ${var.max_workers}",
    "--worker_machine_type ${var.machine_type}",
  ])
}
