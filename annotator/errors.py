"""Errors that reach the person: one clear sentence naming what is wrong."""


class AnnotatorError(Exception):
    """Base class for every error the product reports to the user.

    The message is meant to be shown as is (CLI stderr, GUI notification): it names
    the file or object concerned and the problem, without a traceback.
    """


class InputError(AnnotatorError):
    """A file, folder or argument that cannot be used as given."""


class GeometryError(InputError):
    """A label or series whose geometry does not fit (shape, spacing, orientation)."""


class DatastoreError(AnnotatorError):
    """The datastore cannot do what was asked (unknown image, locked, unwritable)."""


class ServerError(DatastoreError):
    """The server takes no request now (down, unreachable, no answer), whatever is asked."""


class CredentialsError(ServerError):
    """No secret to sign in with, or the server refused who signs in (HTTP 401 or 403):
    asking again with the same user and password only adds refusals (which may lock the
    account); the person signs in again."""


class ModelError(AnnotatorError):
    """A model file, sidecar or architecture that cannot be used."""


def detail(exc: Exception, limit: int = 240) -> str:
    """What an exception from a library says, on one line and at most ``limit`` characters
    (its type where it says nothing): for a message that names the file it was about."""
    return " ".join(str(exc).split())[:limit] or type(exc).__name__
