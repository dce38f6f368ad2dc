# Which repository files the function zip holds: an allow-list of whole folders and named files, so that
# a new folder of data, a virtualenv, the tests or a stray file at any depth can never slip into a
# deployment.
#
# This file holds locals only and reads nothing but var.source_dir and path.module, so that
# tests/test_infra.py can evaluate it with `terraform console` offline, without any provider.

locals {
  # The repository root: the function source lives next to infra/.
  source_root = var.source_dir != null ? var.source_dir : abspath("${path.module}/..")

  # What the function needs at run time, as fileset() patterns relative to the root: the entry points,
  # the requirements the build installs, the serving package whole (with its data files: the web page,
  # the schemas), and of models/ only the networks and the emotion model's card (not its figures).
  function_source_patterns = [
    "main.py",
    "requirements.txt",
    "emotion/**",
    "models/*.tflite",
    "models/model.json",
    "models/face_detection/*.tflite",
  ]

  # Folders inside the package that are not serving code (the batch pipeline, the model tooling): left
  # out whole, whatever they hold and however deep.
  function_excluded_folders = ["emotion/batch", "emotion/training"]

  # Byte-code, wherever it is and whenever it is written (between plan and apply too).
  function_always_excluded = ["**/__pycache__", "**/*.pyc"]

  function_files = toset([
    for file in distinct(flatten([
      for pattern in local.function_source_patterns : tolist(fileset(local.source_root, pattern))
    ])) : file
    if alltrue([
      !anytrue([for folder in local.function_excluded_folders : startswith(file, "${folder}/")]),
      !strcontains(file, "__pycache__/"),
      !endswith(file, ".pyc"),
    ])
  ])

  # archive_file can only exclude, and it skips a folder whose path matches an exclude without looking
  # inside. So the allow-list becomes excludes on two levels:
  #
  # 1. The top level: every entry but the allowed ones, by name, without listing the tree (a "**" walk
  #    of the root would read all of .venv on every plan, and fileset() sees files, not folders). For
  #    each prefix of an allowed name, one glob takes the names that leave the allowed ones there: the
  #    prefix followed by a character no allowed name has next (or by anything, after a whole name),
  #    and the bare prefix if it is no allowed name itself. Together they match every top-level name
  #    but the allowed ones, so any other folder is skipped whole, at any depth below it.
  # 2. Inside the allowed folders (small, ours): every file the patterns above do not take.
  function_top_level = distinct([for pattern in local.function_source_patterns : split("/", pattern)[0]])
  function_folders   = distinct([for pattern in local.function_source_patterns : split("/", pattern)[0] if strcontains(pattern, "/")])

  function_top_level_prefixes = distinct(flatten([
    for name in local.function_top_level : [for i in range(length(name) + 1) : substr(name, 0, i)]
  ]))
  function_top_level_next = {
    for prefix in local.function_top_level_prefixes : prefix => distinct([
      for name in local.function_top_level : substr(name, length(prefix), 1)
      if length(name) > length(prefix) && substr(name, 0, length(prefix)) == prefix
    ])
  }
  function_top_level_others = flatten([
    for prefix, next in local.function_top_level_next : concat(
      [length(next) == 0 ? "${prefix}?*" : "${prefix}[!${join("", sort(next))}]*"],
      prefix != "" && !contains(local.function_top_level, prefix) ? [prefix] : [],
    )
  ])

  function_excludes = sort(distinct(concat(
    local.function_top_level_others,
    local.function_excluded_folders,
    local.function_always_excluded,
    [
      for file in fileset(local.source_root, "{${join(",", local.function_folders)}}/**") : file
      if alltrue([
        !contains(local.function_files, file),
        !anytrue([for folder in local.function_excluded_folders : startswith(file, "${folder}/")]),
        !strcontains(file, "__pycache__/"),
        !endswith(file, ".pyc"),
      ])
    ],
  )))
}
