"""The Qt/napari view: dock widgets, layer glue, reader and sample data (npe2 manifest)."""
