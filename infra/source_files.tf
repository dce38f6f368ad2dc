# Which repository files the function zip holds: an allow-list, so that a new folder of data, a
# virtualenv or the tests can never slip into a deployment.
#
# This file holds locals only and reads nothing but var.source_dir and path.module, so that
# tests/test_infra.py can evaluate it with `terraform console` offline, without any provider.

locals {
  # The repository root: the function source lives next to infra/.
  source_root = var.source_dir != null ? var.source_dir : abspath("${path.module}/..")

  # What the function needs at run time, as fileset() patterns relative to the root: the entry
  # points, the package with its data files (the web page, the schemas), the emotion model and its card,
  # the face detection networks, and the requirements the build installs.
  function_source_patterns = [
    "main.py",
    "requirements.txt",
    "emotion/**",
    "models/*.tflite",
    "models/model.json",
    "models/face_detection/*.tflite",
  ]

  # Training and export tooling inside the package: it imports TensorFlow, Keras or matplotlib,
  # which the function neither installs nor needs.
  function_source_denied = [
    "emotion/train.py",
    "emotion/export.py",
  ]

  function_files = toset([
    for file in distinct(flatten([
      for pattern in local.function_source_patterns : tolist(fileset(local.source_root, pattern))
    ])) : file
    if !(contains(local.function_source_denied, file) || strcontains(file, "__pycache__/") || endswith(file, ".pyc"))
  ])

  # archive_file can only exclude, so the allow-list becomes excludes: every top-level entry that is
  # not allowed (a directory is skipped whole), and every file under the allowed directories that is
  # not on the list. fileset() returns files only, so the top-level directories are read off the files
  # up to three levels down (a full "**" walk would read all of .venv on every plan); the fixed names
  # cover folders whose files may all sit deeper. tests/test_infra.py walks the real tree to prove it.
  function_top_level_allowed    = ["main.py", "requirements.txt", "emotion", "models"]
  function_known_top_level_dirs = [".git", ".venv", "bench", "data", "docs", "infra", "notebooks", "runs", "tests"]
  # Byte-code written between plan and apply is in none of the lists.
  function_always_excluded = ["**/__pycache__"]

  function_top_level_entries = setunion(
    local.function_known_top_level_dirs,
    [
      for file in setunion(
        fileset(local.source_root, "*"),
        fileset(local.source_root, "*/*"),
        fileset(local.source_root, "*/*/*"),
      ) : split("/", file)[0]
    ],
  )

  function_excludes = sort(setunion(
    setsubtract(local.function_top_level_entries, local.function_top_level_allowed),
    setsubtract(fileset(local.source_root, "{emotion,models}/**"), local.function_files),
    local.function_always_excluded,
  ))
}
