"""Annotating images one after another, with no GUI: the session the docks show."""

from annotator.annotation.jobs import FileWorker, InlineRunner, Job, Runner
from annotator.annotation.session import LEAVE_CHOICES, AnnotationSession

__all__ = ["AnnotationSession", "FileWorker", "InlineRunner", "Job", "LEAVE_CHOICES", "Runner"]
