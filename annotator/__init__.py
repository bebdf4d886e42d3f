"""Annotator: AI-assisted annotation of 3D medical images."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("annotator3d")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
