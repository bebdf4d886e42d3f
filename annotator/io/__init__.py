"""Volumes and labels: read NIfTI, NRRD, MHA, MGZ and DICOM series; write labels as NIfTI."""

from annotator.io.read import read_all, read_label, read_volume
from annotator.io.volume import Source, Volume
from annotator.io.write import save_label, write_label

__all__ = ["Source", "Volume", "read_all", "read_label", "read_volume", "save_label", "scan_folder", "write_label"]


def __getattr__(name: str):
    if name == "scan_folder":  # pydicom loads when a folder is scanned, not before
        from annotator.io.dicom import scan_folder

        return scan_folder
    raise AttributeError(f"module 'annotator.io' has no attribute '{name}'")
