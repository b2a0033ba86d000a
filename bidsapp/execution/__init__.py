"""Running the workflow: nipype plugins, work folders, signals and the memory model."""
