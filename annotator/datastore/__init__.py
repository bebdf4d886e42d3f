"""Where images and labels live, behind one interface keyed by image id (:class:`Datastore`):
a local folder (:class:`LocalDatastore`), a DICOMweb server
(:class:`annotator.datastore.remote.DicomwebDatastore`)."""

from annotator.datastore.base import Datastore, ImageRecord, Status, Version
from annotator.datastore.factory import open_datastore
from annotator.datastore.folder import LocalDatastore, fallback_labels_dir

__all__ = ["Datastore", "ImageRecord", "LocalDatastore", "Status", "Version", "fallback_labels_dir",
           "open_datastore"]
