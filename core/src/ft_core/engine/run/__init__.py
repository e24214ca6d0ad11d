"""Running a job: output folder, manifest, trainer arguments, callbacks and the orchestration."""
