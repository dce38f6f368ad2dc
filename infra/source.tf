# The function source: one zip of the allow-list in source_files.tf, shared by both functions.

data "archive_file" "function_source" {
  type       = "zip"
  source_dir = local.source_root
  excludes   = local.function_excludes
  # A linked folder is never followed: it could bring in anything from outside the allow-list.
  exclude_symlink_directories = true
  output_path                 = "${path.module}/.build/function-source.zip"
  # Fixed modes (and archive_file's fixed timestamps) make the zip, and so its hash, the same on
  # every machine: only a change of content redeploys.
  output_file_mode = "0644"

  lifecycle {
    # The top-level excludes are globs built from these names (source_files.tf): a character that is
    # special in a glob would break them.
    precondition {
      condition     = alltrue([for name in local.function_top_level : can(regex("^[A-Za-z0-9._]+$", name))])
      error_message = "The function's top-level names may hold only letters, digits, dots and underscores."
    }
  }
}

resource "google_storage_bucket_object" "function_source" {
  # The name carries the zip's hash: a code or model change is a new object, which changes
  # build_config.source of both functions and so rebuilds and redeploys them.
  name         = "function-source/${data.archive_file.function_source.output_sha256}.zip"
  bucket       = google_storage_bucket.source.name
  source       = data.archive_file.function_source.output_path
  content_type = "application/zip"

  lifecycle {
    precondition {
      condition = alltrue([
        for file in ["main.py", "requirements.txt", "emotion/__init__.py", "models/model.json"] :
        contains(local.function_files, file)
      ])
      error_message = "The function source is incomplete: main.py, requirements.txt, emotion/__init__.py and models/model.json must exist under ${local.source_root}."
    }

    precondition {
      condition     = length([for file in local.function_files : file if endswith(file, ".tflite")]) > 0
      error_message = "No models/*.tflite under ${local.source_root}: train and export the model first (see the repository README)."
    }
  }
}
