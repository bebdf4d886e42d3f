"""The standalone Annotator desktop application (installed as ``annotator_app``)."""
