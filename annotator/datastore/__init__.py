"""Where images and labels live: a local folder now, DICOMweb later."""

from annotator.datastore.local import (
    ImageRecord, LocalDatastore, Status, Version, datastore_for_image, fallback_labels_dir,
)

__all__ = [
    "ImageRecord", "LocalDatastore", "Status", "Version", "datastore_for_image", "fallback_labels_dir",
]
