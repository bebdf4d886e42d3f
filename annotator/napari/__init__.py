"""The Qt/napari view: dock widgets, layer glue, reader and sample data (npe2 manifest)."""

#: the plugin's npe2 name (napari.yaml): the reader napari names on the layers it makes
PLUGIN = "annotator3d"
