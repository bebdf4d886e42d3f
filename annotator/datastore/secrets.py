"""DICOMweb passwords and tokens: in the OS keyring, never in settings, logs or messages.

A secret is kept under the service ``annotator-dicomweb`` and the name ``user@url`` (a
bearer token: ``(token)@url``). On a machine without a usable keyring (a headless
server, a bare container) a secret is kept in this process's memory only, and the
caller is told so. ``ANNOTATOR_DICOMWEB_PASSWORD`` / ``ANNOTATOR_DICOMWEB_TOKEN`` come
before both (scripts, CI).
"""

from __future__ import annotations

import os

from annotator.errors import CredentialsError

KEYRING_SERVICE = "annotator-dicomweb"
_ENV = {"password": "ANNOTATOR_DICOMWEB_PASSWORD", "token": "ANNOTATOR_DICOMWEB_TOKEN"}
_IN_MEMORY: dict[str, str] = {}  # when there is no usable keyring


def _name(url: str, user: str, kind: str) -> str:
    if kind not in _ENV:
        raise ValueError(f"unknown secret kind {kind!r}")
    return f"(token)@{url}" if kind == "token" else f"{user}@{url}"


def remember(url: str, user: str, secret: str, kind: str = "password") -> bool:
    """Keep ``secret``; True when the OS keyring holds it, False when only this process does."""
    name = _name(url, user, kind)
    try:
        import keyring

        keyring.set_password(KEYRING_SERVICE, name, secret)
        _IN_MEMORY.pop(name, None)
        return True
    except Exception:  # noqa: BLE001 - no backend, a locked or refused keyring: keep it for now only
        _IN_MEMORY[name] = secret
        return False


def held_here() -> dict[str, str]:
    """The secrets only this process holds (no usable keyring): what a child process it
    starts (training on a server's labels) is given through its standard input, as
    :func:`take_over` reads it; the keyring and the environment it reaches itself."""
    return dict(_IN_MEMORY)


def take_over(held: dict[str, str]) -> None:
    """Hold the secrets a parent process held (:func:`held_here`)."""
    _IN_MEMORY.update({str(k): str(v) for k, v in held.items()})


def recall(url: str, user: str, kind: str = "password") -> str | None:
    """The secret for ``user`` at ``url`` (environment, keyring, this process), or None."""
    env = os.environ.get(_ENV[kind])
    if env:
        return env
    name = _name(url, user, kind)
    try:
        import keyring

        found = keyring.get_password(KEYRING_SERVICE, name)
    except Exception:  # noqa: BLE001 - no usable keyring here
        found = None
    return found or _IN_MEMORY.get(name)


def forget(url: str, user: str, kind: str = "password") -> None:
    name = _name(url, user, kind)
    _IN_MEMORY.pop(name, None)
    try:
        import keyring

        keyring.delete_password(KEYRING_SERVICE, name)
    except Exception:  # noqa: BLE001 - nothing stored, or no keyring
        pass


def password_for(url: str, user: str) -> str:
    """The password of ``user`` at ``url``, or an error that says where to put one."""
    found = recall(url, user, "password")
    if not found:
        raise CredentialsError(f"{url}: no password for {user} (store one with the Connect dialog or "
                             f"'annotator dicomweb login', or set {_ENV['password']})")
    return found
