"""The one registry of segmentation methods, each behind the same interface (cheap to
import: what a method runs loads when it first runs).

A method says whether it can run on an image (``available``), whether its first use on
an image prepares it first (``needs_preparation``), what a person should know
(``warning``: a model made for another modality), and what it answers: clicks,
scribbles, automatic segmentation. The GUI, the CLI and the benchmarks look methods up
here by name; nothing else dispatches on their types.
"""

from __future__ import annotations

from abc import ABC

from annotator.engine.region import Result
from annotator.errors import InputError
from annotator.io.volume import Volume

#: What a method can be asked for.
KINDS = ("clicks", "scribbles", "automatic")


class Method(ABC):
    name: str = ""
    #: in a few words: what it needs and what it works on (shown beside its name)
    description: str = ""
    kinds: tuple[str, ...] = ()
    #: whether clicks are answered on one slice (the image's own, along its first array
    #: axis) and not in 3-D
    on_slices: bool = False
    #: whether background clicks alone correct a label (they take away from it)
    background_alone: bool = False

    def available(self, volume: Volume, kind: str = "clicks") -> bool:
        """Whether "auto" may choose this method to answer ``kind`` on ``volume``."""
        return True

    def missing(self, volume: Volume) -> str | None:
        """What this method lacks to answer on ``volume`` (a network: any installed model),
        None when nothing."""
        return None

    def needs_preparation(self, volume: Volume) -> bool:
        """Whether the next request on ``volume`` first prepares it (slow, once per image)."""
        return False

    def warning(self, volume: Volume) -> str | None:
        """What may make this method's answers on ``volume`` poor (None: nothing known)."""
        return None

    def label_names(self, volume: Volume) -> dict[str, int]:
        """The labels this method draws on ``volume`` by name (name -> value); none when a
        clicked label is whatever the person chose."""
        return {}

    def clicks(self, volume: Volume, fg, bg, previous=None, value: int = 1, on_answer: bool = False) -> Result:
        """The label ``value`` from the clicks (voxel indices), correcting ``previous``;
        ``on_answer``: the caller knows that ``previous``'s structure ``value`` is DeepEdit's
        answer or a correction of it (see :func:`model_prior`)."""
        raise InputError(f"{self.name} does not answer clicks")

    def scribbles(self, volume: Volume, scribbles, previous=None, value: int = 1, on_answer: bool = False) -> Result:
        raise InputError(f"{self.name} does not answer scribbles")

    def automatic(self, volume: Volume) -> Result:
        raise InputError(f"{self.name} does not segment automatically")


class GraphCut(Method):
    name = "graphcut"
    description = "no model needed: any CT or MR, clicks and scribbles"
    kinds = ("clicks", "scribbles")

    def clicks(self, volume, fg, bg, previous=None, value=1, on_answer=False):
        from annotator.engine.blend import near_the_clicks
        from annotator.engine.interactive import segment_clicks

        def cut(prior):
            result = segment_clicks(volume, fg, bg, previous=previous, value=value, model_prior=prior)
            # on the network's answer a click changes it near the click only, as the network's own do
            return result if prior is None else near_the_clicks(result, previous, value, fg, bg,
                                                                 volume.array_spacing)

        return self._on_the_answer(volume, previous, value, on_answer, cut)

    def scribbles(self, volume, scribbles, previous=None, value=1, on_answer=False):
        from annotator.engine.interactive import segment_scribbles

        return self._on_the_answer(volume, previous, value, on_answer, lambda prior: segment_scribbles(
            volume, scribbles, previous=previous, value=value, model_prior=prior))

    @staticmethod
    def _on_the_answer(volume, previous, value, on_answer, cut) -> Result:
        """``cut(prior)`` with DeepEdit's probability of the label as ``prior`` where the
        label is still that network's answer (:func:`model_prior`), else with None."""
        prior = model_prior(volume, previous, value, on_answer)
        result = cut(prior)
        if prior is not None:  # said with the result, and kept with the label as a model that made it
            result.method += ON_THE_ANSWER
            result.model = METHODS["deepedit"].deep.session(volume).card.name
        return result


class Network(Method):
    """A click network (DeepEdit, DeepGrow): the installed model preferred for the image."""

    background_alone = True

    def __init__(self, name: str, description: str, automatic: bool = False, on_slices: bool = False):
        self.name = name
        self.description = description
        self.kinds = ("clicks", "automatic") if automatic else ("clicks",)
        self.on_slices = on_slices
        self._deep = None

    @property
    def deep(self):
        """The click sessions of this method's model (the model registry loads on first use)."""
        if self._deep is None:
            from annotator.engine.deep import DeepClicks

            self._deep = DeepClicks(self.name)
        return self._deep

    def available(self, volume, kind="clicks"):
        if kind == "automatic":  # nothing else segments automatically: the model that would
            # answer, unless something speaks against it (an image that does not say its
            # modality, a NIfTI, is answered)
            from annotator.engine.deep import model_notes

            entry = self.deep.registry.preferred(self.name, volume.modality, volume.extent_mm)
            return entry is not None and not model_notes(entry.card, volume)
        return self.deep.available(volume)

    def missing(self, volume):
        from annotator.engine.deep import no_model

        found = self.deep.registry.preferred(self.name, volume.modality, volume.extent_mm)
        return no_model(self.name) if found is None else None

    def needs_preparation(self, volume):
        return not self.deep.prepared(volume)

    def warning(self, volume):
        return self.deep.warning(volume)

    def label_names(self, volume):
        """DeepEdit's classes (a click on label 2 corrects its second class), from the
        sidecar of the model that would answer: nothing is loaded."""
        if "automatic" not in self.kinds:  # DeepGrow segments what is clicked, under any name
            return {}
        entry = self.deep.registry.preferred(self.name, volume.modality, volume.extent_mm)
        return entry.card.foreground if entry else {}

    def clicks(self, volume, fg, bg, previous=None, value=1, on_answer=False):
        return self.deep(volume, fg, bg, previous=previous, value=value)

    def automatic(self, volume):
        if "automatic" not in self.kinds:
            return super().automatic(volume)
        return self.deep.session(volume).automatic()


METHODS: dict[str, Method] = {m.name: m for m in (
    GraphCut(),
    Network("deepedit", "network: needs a DeepEdit model for the modality", automatic=True),
    Network("deepgrow3d", "network: needs a DeepGrow 3D model for the modality"),
    Network("deepgrow2d", "network: needs a DeepGrow 2D model for the modality; answers slice by slice",
            on_slices=True),
)}
#: Preference when choosing automatically: a network for the image's modality, else GraphCut.
_PREFERENCE = ("deepedit", "deepgrow3d", "deepgrow2d", "graphcut")


#: what a GraphCut step on DeepEdit's answer adds to its method's name
ON_THE_ANSWER = " on deepedit's answer"


def keeps_the_answer(method: str) -> bool:
    """Whether a step of ``method`` (a :class:`Result`'s) leaves a structure DeepEdit's
    answer or a correction of it: DeepEdit's own (automatic or clicks), or a step on its answer."""
    return method in ("deepedit", "deepedit-auto") or method.endswith(ON_THE_ANSWER)


#: the label being corrected is a network's answer while it keeps at least this Dice with
#: it, unless the caller knows where it came from (``on_answer``)
STILL_THE_MODELS = 0.8


def model_prior(volume: Volume, previous, value: int, on_answer: bool = False):
    """DeepEdit's P(label ``value``) on the image grid, when the label being corrected
    (``previous``) is that network's answer for it: ``on_answer`` (the caller knows it is
    the answer or a correction of it: the session, from its undo history), or else a Dice
    of at least :data:`STILL_THE_MODELS` with the answer. Strokes then correct the
    network's answer instead of starting from nothing (see docs/engine.md). A label drawn
    from nothing, or one that is another structure than the network's of that value, is
    cut from the strokes alone: by value alone, a whole hippocampus drawn as label 1 (the
    network's anterior part) lost its posterior part. By the Dice alone, corrections that
    had moved a part far enough from the answer (a large missed part added) lost the
    prior, and the next stroke or click was cut from the marks alone: 2 of 120 GraphCut
    clicks lost 0.3–0.4 of Dice that way."""
    from annotator.engine.metrics import dice

    if previous is None or not (previous == value).any():
        return None
    deepedit = METHODS["deepedit"]
    if value not in deepedit.label_names(volume).values() or not deepedit.available(volume, "automatic"):
        return None
    prior = deepedit.deep.session(volume).probability((value,))
    return prior if on_answer or dice(prior > 0.5, previous == value) >= STILL_THE_MODELS else None


def methods_for(kind: str) -> list[str]:
    """Names of the methods that answer ``kind`` (clicks, scribbles, automatic)."""
    return [name for name, m in METHODS.items() if kind in m.kinds]


def choose(volume: Volume, kind: str = "clicks", requested: str = "auto") -> Method:
    """The method to answer ``kind`` on ``volume``: ``requested``, or the best available."""
    if requested == "auto":
        for name in _PREFERENCE:
            method = METHODS[name]
            if kind in method.kinds and method.available(volume, kind):
                return method
        raise InputError(_none_fits(volume, kind))
    method = METHODS.get(requested)
    if method is None:
        raise InputError(f"unknown method '{requested}' (available: {', '.join(METHODS)})")
    if kind not in method.kinds:
        raise InputError(f"{requested} does not answer {kind} (methods that do: {', '.join(methods_for(kind))})")
    return method


def _none_fits(volume: Volume, kind: str) -> str:
    """Why no method was chosen for ``kind`` on ``volume`` (only networks segment
    automatically): none installed, or none for such an image."""
    from annotator.engine.deep import POOR

    notes = [note for note in (METHODS[name].warning(volume) for name in methods_for(kind)) if note]
    if not notes:
        return f"no installed model segments {kind.replace('automatic', 'automatically')}; train a DeepEdit model first"
    parts = [line.replace(f" {POOR}", "") for note in notes for line in note.splitlines()]
    why = " ".join([parts[0], *(p[:1].upper() + p[1:] for p in parts[1:])])
    return (f"no installed model is for this image: {why} Segment it with clicks or scribbles "
            f"(GraphCut), or run the model anyway: choose {', '.join(methods_for(kind))} under Method "
            "(`annotator infer`: --model NAME).")


#: a structure that takes more of the image than this says that nothing stopped the cut
FILLS_IMAGE = 0.9


def fills_image(voxels: int, total: int) -> str | None:
    """A note when one structure takes nearly the whole image (a GraphCut click on a
    uniform or noisy image grows to its edges, and said nothing); None otherwise."""
    if total and voxels > FILLS_IMAGE * total:
        return (f"the structure fills {voxels / total:.0%} of the image: no edge stopped it around the marks. "
                "Add background clicks or strokes where it ends")
    return None
