"""Where images and labels live: a local folder now, DICOMweb later."""

from annotator.datastore.local import ImageRecord, LocalDatastore, Status, Version

__all__ = ["ImageRecord", "LocalDatastore", "Status", "Version"]
