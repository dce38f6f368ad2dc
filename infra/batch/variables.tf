# Inputs from ../batch.tf. This file and command.tf hold no resources, so tests/test_infra_batch.py can
# evaluate the ready command with `terraform console` offline, without any provider.

variable "project_id" {
  description = "Project the Dataflow jobs run in."
  type        = string
}

variable "region" {
  description = "Region of the Dataflow jobs (the buckets' region, so no data leaves it)."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of the worker service account's ID."
  type        = string
}

variable "uploads_bucket" {
  description = "Bucket holding the photos: the workers may read it."
  type        = string
}

variable "results_bucket" {
  description = "Bucket the results go to: the workers may write it; its dataflow/ folder is the temp location."
  type        = string
}

variable "results_prefix" {
  description = "Folder of the results bucket the results go to, as the storage function writes them."
  type        = string
}

variable "max_workers" {
  description = "Most workers the ready command lets Dataflow start."
  type        = number
}

variable "machine_type" {
  description = "Machine type of the workers in the ready command."
  type        = string
}
