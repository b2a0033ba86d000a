"""Pure numerical core: numpy, scipy and nibabel only (no nipype, no settings)."""
