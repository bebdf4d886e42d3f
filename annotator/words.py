"""How the product says a number of things: "1 image", "2 images"."""

from __future__ import annotations


def count(number: int, thing: str) -> str:
    """``number`` and ``thing``, in the plural unless one (``thing`` is a noun taking -s)."""
    return f"{number} {thing}{'s' if number != 1 else ''}"


def agree(number: int, one: str, many: str) -> str:
    """The word that agrees with ``number`` of things: ``one`` for one, else ``many``
    ("has"/"have", "it"/"them")."""
    return one if number == 1 else many
