"""Files shipped with the package: label presets, sample-data manifest, icons."""
