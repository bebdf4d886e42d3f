"""The `annotator` command: everything the GUI does, from a shell.

On bad input every command exits with status 2 and one line on stderr that names the
file and the problem; ``--debug`` shows the traceback as well.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
import traceback

import numpy as np

from annotator import __version__
from annotator.errors import AnnotatorError, DatastoreError, InputError, ModelError, ServerError
from annotator.words import count


def _xyz(text: str) -> tuple[int, int, int]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not X,Y,Z voxel indices") from None
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"'{text}' is not X,Y,Z voxel indices")
    return values  # type: ignore[return-value]


def cmd_info(args) -> int:
    from pathlib import Path

    from annotator.io import read_volume
    from annotator.io.read import export_folder
    from annotator.io.sniff import is_image_file

    path = export_folder(Path(args.path))
    scan = None
    if path.is_dir():
        from annotator.io.dicom import pick_series, scan_folder

        scan = scan_folder(path)
        if not scan.series:
            from annotator.datastore.places import find_images

            # the labels folder holds labels (a datastore's saved versions, a data set's own)
            images = sorted(p for p in find_images(path, skip=path / "labels").values() if is_image_file(p))
            if not images:
                pick_series(scan, path, None)  # raises, naming what the folder holds instead
            print(f"{path}: {len(images)} image files")
            for p in images[:20]:
                print(f"  {p.relative_to(path)}")
            if len(images) > 20:
                print(f"  ... and {len(images) - 20} more")
            return 0
        uids = len({s.series_uid for s in scan.series})
        parts = f" ({len(scan.series)} volumes: acquisitions told apart)" if uids != len(scan.series) else ""
        print(f"{path}: {uids} DICOM series{parts}")
        for i, s in enumerate(scan.series):
            print(f"  [{i}] {s.describe()}")
        if scan.skipped:
            print(f"  ({len(scan.skipped)} other files skipped, e.g. {scan.skipped[0][0].name}: {scan.skipped[0][1]})")
    volume = read_volume(path, args.series, scan)
    print(volume.summary())
    return 0


def _write_foreground(result, volume, out: str) -> int:
    """Write a result as a 0/1 label and say which method made it."""
    from annotator.engine.methods import fills_image
    from annotator.io import save_label

    foreground = (result.label > 0).astype(np.uint8)
    save_label(out, foreground, volume, {1: "foreground"}, algorithm=result.method)
    voxels = int(foreground.sum())
    print(f"method: {result.method}, {voxels} voxels, {result.seconds:.2f} s -> {out}")
    note = fills_image(voxels, foreground.size)
    if note:
        print(f"annotator: warning: {note}", file=sys.stderr)
    return 0


def _answer(args, volume, kind: str, run) -> int:
    """``run(previous, value)``: an engine step of ``kind``; with ``--label``, it corrects
    structure ``--value`` of that label (its other labels kept) and the whole label is
    written, else its structure is written as 0/1."""
    from annotator.io import read_label, save_label
    from annotator.io.label_names import label_names_in

    if not args.label:
        if args.value is not None:  # it would be left out: the structure is written as 1
            raise InputError("--value names the structure of --label to correct; without --label the "
                             "structure is written as 1")
        return _write_foreground(run(None, 1), volume, args.out)
    value = args.value or 1
    label = read_label(args.label, volume)
    result = run(label, value)
    save_label(args.out, result.label, volume, {v: n for n, v in label_names_in(args.label).items()},
               algorithm=result.method)
    changed = int((result.label != label).sum())
    print(f"method: {result.method}, label {value} corrected by {kind}, {changed} voxels changed, "
          f"{result.seconds:.2f} s -> {args.out}")
    return 0


def cmd_scribbles(args) -> int:
    from annotator.engine.methods import METHODS
    from annotator.io import read_label, read_volume

    volume = read_volume(args.image, args.series)
    scribbles = read_label(args.scribbles, volume)
    others = [int(v) for v in np.unique(scribbles) if v > 2]
    if others:  # a label map given for strokes, say: its other values were left out unsaid
        said = ", ".join(map(str, others[:5])) + (", ..." if len(others) > 5 else "")
        if not (scribbles == 1).any():
            raise InputError(f"{args.scribbles}: no foreground stroke (value 1); it holds {said} "
                             "(strokes are 1 = foreground, 2 = background)")
        print(f"warning: {args.scribbles}: values {said} are no strokes (1 = foreground, 2 = background): "
              "left out", file=sys.stderr)
    return _answer(args, volume, "scribbles", lambda previous, value: METHODS["graphcut"].scribbles(
        volume, scribbles, previous=previous, value=value))


def cmd_clicks(args) -> int:
    from annotator.engine import choose
    from annotator.io import read_volume

    volume = read_volume(args.image, args.series)
    if not args.fg and not args.label:
        raise InputError("clicks need a foreground click (--fg X,Y,Z); background clicks alone correct a label "
                         "(--label FILE)")
    for point in [*(args.fg or []), *(args.bg or [])]:
        if not volume.contains(point):
            raise InputError(f"click {point} (x,y,z) is outside the image of size {volume.size}")
    method = choose(volume, "clicks", args.method)
    note = method.warning(volume)
    if note:
        print(f"warning: {note}", file=sys.stderr)
    fg = [volume.index_to_array(p) for p in args.fg or []]
    bg = [volume.index_to_array(p) for p in args.bg or []]
    return _answer(args, volume, "clicks", lambda previous, value: method.clicks(
        volume, fg, bg, previous=previous, value=value))


def cmd_tidy(args) -> int:
    from annotator.engine.tidy import RANGE_STEPS, tidy
    from annotator.io import read_label, read_volume, save_label
    from annotator.io.label_names import label_names_in

    volume = read_volume(args.image, args.series)
    label = read_label(args.label, volume)
    if args.step in RANGE_STEPS and args.range is None:
        raise InputError(f"--step {args.step} needs --range LOW HIGH (the image's units: HU on a CT)")
    result = tidy(label, args.value, args.step, axis={"z": 0, "y": 1, "x": 2}[args.slices],
                  spacing=volume.array_spacing, **({} if args.mm is None else {"mm": args.mm}),
                  image=volume.array, within=args.range)
    save_label(args.out, result.label, volume, {v: n for n, v in label_names_in(args.label).items()})
    changed = int((result.label != label).sum())
    print(f"{result.method}: label {args.value}, {changed} voxels changed, {result.seconds:.2f} s -> {args.out}")
    return 0


def cmd_infer(args) -> int:
    from annotator.engine.deep import DeepClicks, model_notes, session_for_model
    from annotator.engine.methods import choose
    from annotator.io import read_volume, save_label
    from annotator.models import ModelRegistry

    volume = read_volume(args.image, args.series)
    if args.model is None:  # as Auto-segment: the model for such an image, or why there is none
        session = DeepClicks(choose(volume, "automatic").name).session(volume)
    else:  # chosen: it answers, with what may make it poor
        entry = ModelRegistry().entry(args.model)
        if entry.card.method != "deepedit":
            raise InputError(f"model '{args.model}' is a {entry.card.method} model; automatic segmentation "
                             "needs a deepedit model")
        for note in (model_notes(entry.card, volume) or "").splitlines():
            print(f"warning: {note}", file=sys.stderr)
        session = session_for_model(volume, args.model)
    card = session.card
    result = session.automatic()
    names = {v: k for k, v in card.labels.items()}
    save_label(args.out, result.label, volume, {v: n for v, n in names.items() if v}, algorithm=card.name)
    found = ", ".join(f"{names.get(int(v), v)} {int((result.label == v).sum())}" for v in np.unique(result.label) if v)
    print(f"method: {result.method} ({card.name}), {result.seconds:.2f} s, voxels: {found or 'none'} -> {args.out}")
    return 0


def _describe(event: dict) -> str | None:
    kind = event["event"]
    if kind == "start":
        limit = f" (at most {event['max_minutes']:g} minutes)" if event.get("max_minutes") else ""
        return (f"training {event['method']} on {count(event['train_cases'], 'image')} ({event['val_cases']} for "
                f"validation), "
                f"{event['iterations']} iterations{limit} on {event['device']} -> {event['run']}")
    if kind == "progress":
        return (f"epoch {event['epoch']}/{event['epochs']}  iteration {event['iteration']}/{event['iterations']}  "
                f"loss {event['loss']:.4f}  {event['it_per_s']:.2f} it/s  ETA {event['eta_s'] / 60:.1f} min")
    if kind == "validation":
        return f"validation Dice {event['dice']:.3f} (best {event['best_dice']:.3f}) after epoch {event['epoch']}"
    if kind == "message":
        return event["text"]
    if kind == "done":
        chosen = "; now used for clicks" if event.get("activated") else (
            f"; not used for clicks: {event['not_used']} (choose it with `annotator models use`)"
            if event.get("not_used") else "")
        return f"done: best validation Dice {event['best_dice']:.3f}, model '{event['model']}'{chosen}"
    if kind == "cancelled":
        return f"cancelled at iteration {event['iteration']}; resume with --resume {Path(event['checkpoint']).parent}"
    return None


def cmd_train(args) -> int:
    import time

    from annotator.training.config import TrainConfig
    from annotator.training.runner import TrainingProcess

    if args.config:
        config = TrainConfig.load(args.config)
    else:
        if not args.method or not args.data:
            raise InputError("give --method and --data (or --config FILE)")
        config = TrainConfig(method=args.method, data=args.data, name=args.name or "", split=args.split,
                             epochs=args.epochs, max_iterations=args.iterations, max_minutes=args.max_minutes,
                             batch_size=args.batch_size, patch=list(reversed(args.patch)) if args.patch else [],
                             target_spacing=list(reversed(args.spacing)) if args.spacing else [], init=args.init,
                             resume=args.resume or "", activate=not args.no_activate, modality=args.modality,
                             variant=args.variant, seed=args.seed,
                             val_every=args.val_every,
                             **({"learning_rate": args.learning_rate} if args.learning_rate is not None else {}))
    job = TrainingProcess(config)
    job.start()
    try:
        while True:
            for event in job.poll():
                line = _describe(event)
                if line and event["event"] == "progress" and not args.verbose:
                    print("\r" + line, end="", flush=True)
                elif line:
                    print(("\n" if event["event"] == "validation" and not args.verbose else "") + line, flush=True)
                if event["event"] == "error":
                    raise AnnotatorError(f"training failed: {event['message']}")
                if event["event"] == "exit":
                    return 0 if event["returncode"] == 0 else 1
            time.sleep(0.2)
    except KeyboardInterrupt:
        print("\nstopping after this iteration (keeps the last checkpoint) ...", file=sys.stderr)
        job.cancel()
        job.wait(30)
        for event in job.poll():
            if _describe(event):
                print(_describe(event))
        return 130


def _patch(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not X,Y,Z sizes") from None
    if len(values) != 3 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not X,Y,Z sizes")
    return values


def _study_date(text: str) -> str:
    """A study date as DICOM queries take it (YYYYMMDD, or a range with ``-``); a day as
    ISO 8601 writes it (2020-01-21) is that day, a year or a month the range of its days."""
    import datetime

    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):  # ISO 8601, as people write a day
        text = text.replace("-", "")
    if re.fullmatch(r"\d{4}(\d{2})?", text):
        month = text[4:] and int(text[4:])
        if month and not 1 <= month <= 12:
            raise argparse.ArgumentTypeError(f"'{text}': no month {month}")
        return f"{text}{'01' if month else '0101'}-{text}{'31' if month else '1231'}"
    ends = text.split("-")
    if len(ends) > 2 or not any(ends):
        raise argparse.ArgumentTypeError(f"'{text}' is not a date YYYYMMDD or a range YYYYMMDD-YYYYMMDD")
    for end in filter(None, ends):
        try:
            real = len(end) == 8 and bool(datetime.datetime.strptime(end, "%Y%m%d"))  # strptime takes 2020011 too
        except ValueError:
            real = False
        if not real:
            said = f"'{text}'" if end == text else f"'{text}': '{end}'"
            raise argparse.ArgumentTypeError(f"{said} is not a date YYYYMMDD")
    return text


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"'{text}' is not a port (1 to 65535)")
    return int(text)


def _label_value(text: str) -> int:
    from annotator.io.volume import LABEL_TOP

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a label value (1 to {LABEL_TOP})") from None
    if not 1 <= value <= LABEL_TOP:
        raise argparse.ArgumentTypeError(f"{value} is not a label value (1 to {LABEL_TOP})")
    return value


def _spacing(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not X,Y,Z spacings in mm") from None
    if len(values) != 3 or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"'{text}' is not X,Y,Z spacings in mm")
    return values


def _window(text: str) -> tuple[float, float]:
    from annotator.models.importer import parse_window

    try:
        return parse_window(text)
    except ModelError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _store(place: str):
    from annotator.datastore.factory import open_store

    store = open_store(place)
    for notice in store.notices():
        print(f"annotator: {notice}", file=sys.stderr)
    return store


def cmd_status(args) -> int:
    import json

    store = _store(args.place)
    records = store.records()
    if args.json:
        print(json.dumps([r.to_json() for r in records], indent=1))
        return 0
    waiting = store.uploads_waiting()
    print(f"{store.place}: {count(len(records), 'image')}, {sum(r.status.value == 'labeled' for r in records)} labeled"
          + (f", {waiting} waiting to be sent (annotator dicomweb send)" if waiting else "")
          + (f" (view only: {store.read_only_reason()})" if store.read_only_reason() else ""))
    width = max([len(r.id) for r in records] + [5])
    for r in records:
        score = "" if r.score is None else f"{r.score:.3f}"
        maps = f"  label maps: {', '.join(r.label_maps)}" if r.label_maps else ""
        print(f"  {r.id:<{width}}  {r.status.value:<12} {','.join(r.versions_shown()):<24} {score:<6}{maps}".rstrip())
    return 0


def cmd_stats(args) -> int:
    from annotator.datastore.statistics import as_csv, datastore_statistics
    from annotator.io.atomic import atomic_write_text

    store = _store(args.place)
    rows = list(datastore_statistics(store))
    measured = [r for r in rows if "error" not in r]
    if not measured:
        raise InputError(f"{store.name}: none of its labelled images could be measured: "
                         + "; ".join(f"{r['image']}: {r['error']}" for r in rows[:3]))
    width = max([len(r["image"]) for r in measured] + [5])
    named = max([len(r["name"]) for r in measured] + [4])
    print(f"{'image':<{width}}  {'label':<{named}}  {'mL':>10}  {'mean':>9}  {'sd':>8}  {'median':>9}")
    for r in measured:
        print(f"{r['image']:<{width}}  {r['name']:<{named}}  {r['volume_ml']:>10.2f}  {r['mean']:>9.1f}  "
              f"{r['sd']:>8.1f}  {r['median']:>9.1f}")
    for r in rows:
        if "error" in r:
            print(f"  left out {r['image']}: {r['error']}")
    if args.csv:
        atomic_write_text(args.csv, as_csv(rows))
        images = len({r["image"] for r in measured})
        print(f"{count(len(measured), 'structure')} of {count(images, 'image')} -> {args.csv}")
    return 0


def cmd_export(args) -> int:
    from annotator.datastore.export import export_nnunet

    store = _store(args.place)
    described = export_nnunet(store, args.out, channels=args.channels,
                              progress=lambda text, _f: print(text, file=sys.stderr, flush=True) if args.verbose else None)
    labels = ", ".join(f"{v} {n}" for n, v in described["labels"].items() if v)
    print(f"{args.out}: {count(described['numTraining'], 'case')}, channels "
          f"{', '.join(described['channel_names'].values())}; labels {labels}")
    for image_id, why in described["annotator"]["left_out"].items():
        print(f"  left out {image_id}: {why}")
    return 0


def cmd_rank(args) -> int:
    import json

    from annotator.active import rank

    store = _store(args.place)
    quiet = args.json

    def progress(text: str, fraction: float) -> None:
        if not quiet:
            print(f"\r[{fraction:4.0%}] {text[:70]:<70}", end="", file=sys.stderr, flush=True)

    ranking = rank(store, args.strategy, progress=progress, seed=args.seed)
    if not quiet:
        print(file=sys.stderr)
    for image_id, reason in ranking.skipped.items():
        print(f"skipped {image_id}: {reason}", file=sys.stderr)
    if args.json:
        print(json.dumps([r.to_json() for r in ranking.ranked], indent=1))
        return 0
    width = max([len(r.id) for r in ranking.ranked] + [5])
    for r in ranking.ranked:
        labels = "  ".join(f"{k} {v:.3f}" for k, v in r.per_label.items())
        print(f"{r.id:<{width}}  {r.score:8.4f}  {labels}")
    print(f"{count(len(ranking.ranked), 'unlabeled image')} ranked by {args.strategy}"
          + (f", {ranking.seconds_per_image:.2f} s per image scored" if ranking.seconds_per_image else ""),
          file=sys.stderr)
    return 0


def cmd_plan(args) -> int:
    import json

    from annotator.training.planner import plan

    found = plan(args.data, args.split)
    print(json.dumps(found.to_json(), indent=1) if args.json else found.summary())
    return 0


def _labels(text: str) -> dict[str, int]:
    from annotator.models.importer import parse_labels

    try:
        return parse_labels(text)
    except ModelError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_models_import(args) -> int:
    from annotator.models.importer import import_model

    sidecar = import_model(args.path, args.method, args.labels, list(reversed(args.spacing)) if args.spacing else None,
                           name=args.name or "", modality=args.modality,
                           roi_size=list(reversed(args.roi)) if args.roi else None, window=args.window,
                           input_size=args.input_size)
    print(f"{sidecar.stem}: installed ({sidecar}); choose it with `annotator models use {sidecar.stem}` or in "
          f"the Training dock's Models... window")
    return 0


def cmd_models_calibrate(args) -> int:
    from annotator.active.calibration import MIN_CASES
    from annotator.training.calibrate import calibrate_installed

    text = calibrate_installed(args.name, args.data, lambda text, fraction: print(f"  {text}", flush=True))
    if not text:
        print(f"{args.name}: too few cases to choose by (at least {MIN_CASES}); unchanged")
        return 1
    print(f"{args.name}: {text}")
    return 0


def cmd_models_list(args) -> int:
    from annotator.models.registry import ModelRegistry

    registry = ModelRegistry()
    chosen, defaults = registry.chosen(), registry.defaults()  # a method with none chosen uses its default
    for entry in registry.entries():
        default = defaults.get(entry.card.method) == entry.sidecar
        mark = "*" if chosen.get(entry.card.method) == entry.card.name or default else " "
        where = "bundled" if entry.bundled else str(entry.sidecar.parent)
        unused = entry.card.not_used if mark == " " else ""
        print(f"{mark} {entry.card.name:<36} {entry.card.method:<11} {entry.card.modality:<8} "
              f"{','.join(entry.card.foreground):<24} {entry.card.trained_extent or 'any size':<36} {where}"
              + (f"  (not used unless chosen: {unused})" if unused else "")
              + ("  (the default: none chosen)" if default else ""))
    return 0


def cmd_models_use(args) -> int:
    from annotator.models.registry import ModelRegistry

    card = ModelRegistry().choose(args.name)
    print(f"{card.name}: now used for {card.method}")
    return 0


def cmd_accept(args) -> int:
    from annotator.io.label_file import read_label_file
    from annotator.io.volume import as_label

    store = _store(args.place)
    volume = store.open_image(args.image_id)
    said = len(volume.warnings)
    if not Path(args.label).is_file() and args.label in store.label_maps(args.image_id):  # a label map's id
        found, names = store.label_map(args.image_id, args.label, volume)
    else:
        found, names = read_label_file(args.label, volume, store.known_names())
    label = as_label(found, str(args.label))
    for warning in volume.warnings[said:]:  # an RT Structure Set's outline that could not be placed, say
        print(f"annotator: warning: {warning}", file=sys.stderr)
    store.accept(args.image_id, label, volume, names={v: n for n, v in names.items()} or None)
    print(f"{args.image_id}: {args.label} accepted as the final label ({int((label > 0).sum())} voxels"
          + (f"; {', '.join(f'{v} {n}' for n, v in sorted(names.items(), key=lambda kv: kv[1]))})" if names else ")"))
    return 0


def _label_version(text: str) -> str:
    from annotator.datastore.base import EARLIER, Version

    if text in {v.value for v in Version} or re.fullmatch(re.escape(EARLIER) + r"[1-9][0-9]*", text):
        return text
    raise argparse.ArgumentTypeError(f"{text!r}: not final, original, draft or earlier-N (N from 1)")


def cmd_label(args) -> int:
    from annotator.annotation.labels import format_ml
    from annotator.io import save_label
    from annotator.io.volume import label_counts, volumes_ml

    store = _store(args.place)
    volume = store.open_image(args.image_id)
    label = store.saved_label(args.image_id, volume, args.version)
    if label is None:
        raise InputError(f"{args.image_id}: has no {args.version} label in {store.place}")
    names = store.names_of(args.image_id)
    save_label(args.out, label, volume, names)
    print(f"{args.image_id}: {args.version} label -> {args.out}")
    for value, (voxels, ml) in volumes_ml(label_counts(label), volume.spacing).items():
        print(f"  {value} {names.get(value, f'label {value}')}: {voxels:,} voxels, {format_ml(ml)}")
    return 0


def _server(args):
    """The server of a `dicomweb` command: its user given with --user or in the URL
    (``http://user@host/dicom-web``, as `status` and the other commands take it)."""
    from annotator.datastore.factory import server_at

    return server_at(args.url, args.user or "", getattr(args, "token", None) or "", args.ca_bundle or "")


def cmd_dicomweb_send(args) -> int:
    from annotator.datastore.remote import DicomwebDatastore

    store = DicomwebDatastore(_server(args))
    waiting = store.uploads_waiting()
    if not waiting:
        print(f"{store.name}: no labels wait to be sent")
        return 0
    sent, left = store.send_pending(force=True)
    print(f"{store.name}: {count(sent, 'label')} sent" + (f", {left} still waiting" if left else ""))
    if left:
        unsent = store.unsent() or {}
        print(f"not sent: {unsent.get('error') or 'not tried'}", file=sys.stderr)
        return 1
    return 0


def cmd_dicomweb_login(args) -> int:
    """Ask for the password (or token), check it against the server, keep it in the keyring."""
    import getpass

    from annotator.datastore import secrets
    from annotator.datastore.dicomweb import Credentials, DicomwebServer
    from annotator.datastore.factory import server_terms

    url, user, ca_bundle = server_terms(args.url, args.user or "", "", args.ca_bundle or "")
    kind = "password" if user else "token"
    try:
        secret = sys.stdin.readline().strip() if args.stdin else getpass.getpass(f"{kind} for {args.url}: ")
    except EOFError:  # no terminal and nothing piped in
        raise InputError(f"no {kind} given: the input ended (type it in a terminal, or pipe it in with --stdin)") from None
    if not secret:
        raise InputError(f"no {kind} given")
    credentials = Credentials(user, secret, "", ca_bundle) if user else Credentials("", "", secret, ca_bundle)
    next(DicomwebServer(url, credentials).series(page=1), None)  # refused credentials stop here
    kept = secrets.remember(url, user, secret, kind)
    print(f"{args.url}: {kind} checked and kept " + ("in the keyring" if kept else
          "for this process only (no usable keyring here: use ANNOTATOR_DICOMWEB_PASSWORD)"))
    return 0


def cmd_dicomweb_list(args) -> int:
    server = _server(args)
    listed = 0
    for row in server.series(modality=args.modality or "", patient=args.patient or "",
                             description=args.description or "", date=args.date or ""):
        print(f"{row.study_uid}\t{row.series_uid}\t{row.modality}\t{row.description}\t{row.instances}")
        listed += 1
    print(f"{listed} image series", file=sys.stderr)
    return 0


def cmd_dicomweb_pull(args) -> int:
    import shutil

    from annotator.datastore.series_cache import SeriesCache

    server = _server(args)
    row = server.find_series(args.series_uid)
    cache = SeriesCache(server)
    folder = cache.cached(row.study_uid, row.series_uid)
    if folder is None:
        def progress(done: int, total: int) -> None:
            print(f"\rdownloading {row.description or row.series_uid}: {done}/{total}", end="", file=sys.stderr,
                  flush=True)

        folder = cache.fetch(row.study_uid, row.series_uid, progress)
        print(file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = sorted(folder.glob("*.dcm"))
    for path in files:
        shutil.copyfile(path, out / path.name)
    print(f"{len(files)} instances of {row.series_uid} -> {out}")
    return 0


def _cached_series(server, series_uid: str) -> Path:
    from annotator.datastore.series_cache import SeriesCache

    row = server.find_series(series_uid)
    return SeriesCache(server).fetch(row.study_uid, row.series_uid)


def cmd_dicomweb_push_seg(args) -> int:
    from annotator.io import read_label, read_volume
    from annotator.io.seg import series_seg
    from annotator.io.volume import label_values

    server = _server(args)
    folder = _cached_series(server, args.series_uid)
    volume = read_volume(folder)
    label = read_label(args.label, volume)
    values = label_values(label)
    given = [n.strip() for n in (args.names or "").split(",") if n.strip()]
    names = dict(zip(values, given))  # unnamed values become "label N"
    sop_uid, data = series_seg(label, volume, names, algorithm=args.algorithm, deflated=True)
    server.store(data, sop_uid)
    print(sop_uid)
    return 0


def _seg_instance(server, uid: str) -> tuple[str, str, str]:
    """(study, series, SOP Instance UID) of the SEG that ``uid`` names: its own UID, or its
    series' when that series holds one SEG."""
    try:
        study, series = server.find_instance(uid)
        return study, series, uid
    except ServerError:
        raise
    except DatastoreError:
        pass  # a series' UID, perhaps
    try:
        row = server.find_series(uid)
    except ServerError:
        raise
    except DatastoreError:
        raise DatastoreError(f"{server.url}: no instance or series {uid}") from None
    if row.modality != "SEG":
        raise InputError(f"{uid} is {row.modality or 'an image'} series {row.description!r}, not a segmentation: give "
                         "a SEG's SOP Instance UID, or the UID of a series of one SEG")
    instances = server.instances(row.study_uid, uid)
    if len(instances) != 1:
        raise InputError(f"SEG series {uid} holds {len(instances)} instances: give the SOP Instance UID of one "
                         f"({', '.join(instances[:3])}{', ...' if len(instances) > 3 else ''})")
    return row.study_uid, uid, instances[0]


def cmd_dicomweb_pull_seg(args) -> int:
    import io

    import pydicom

    from annotator.io import read_volume, save_label
    from annotator.io.seg import seg_to_label

    server = _server(args)
    study, series, sop_uid = _seg_instance(server, args.seg_uid)
    ds = pydicom.dcmread(io.BytesIO(server.instance_bytes(study, series, sop_uid)))
    if ds.get("Modality") != "SEG":
        raise InputError(f"{args.seg_uid} is a {ds.get('Modality', 'non-SEG')} instance, not a segmentation")
    source_series = str(ds.ReferencedSeriesSequence[0].SeriesInstanceUID)
    volume = read_volume(_cached_series(server, source_series))
    said = len(volume.warnings)
    label, names = seg_to_label(ds, volume)
    for warning in volume.warnings[said:]:  # segments that overlap
        print(f"annotator: warning: {warning}", file=sys.stderr)
    save_label(args.out, label, volume, names)
    print(f"{args.seg_uid}: " + ", ".join(f"{v} {n}" for v, n in names.items()) + f" -> {args.out}")
    return 0


def _sample_series(folder):
    """The sample DICOM series, with UIDs given where the files have none."""
    from annotator.datastore.orthanc import series_with_uids
    from annotator.samples import data_root

    root = data_root()
    if root is None:
        raise InputError("no sample data folder here (../shared/data beside the checkout, or ANNOTATOR_DATA)")
    sources = [root / "udacity_study3_mr_dicom" / name for name in ("11_HCropVolume", "11-T1post-18670",
                                                                   "36468-FLAIRreg-58706")]
    sources += [root / "dcmqi_ct3slice_seg" / "ct-3slice"]
    files = [p for s in sources if s.is_dir() for p in sorted(s.iterdir())]
    ct = root / "totalsegmentator_example" / "example_ct_dicom"
    if ct.is_dir():  # its UIDs are empty: a server would merge or refuse the files
        files += series_with_uids(ct, folder / "ct")
    return files


def _interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def cmd_orthanc_serve(args) -> int:
    import signal
    import tempfile
    import time

    from annotator.datastore.orthanc import LocalOrthanc

    # stopped as by Ctrl-C when killed or its terminal closes: Orthanc stops with it
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _interrupt)
    folder = Path(args.folder) if args.folder else Path(tempfile.mkdtemp(prefix="annotator-orthanc-"))
    server = LocalOrthanc(folder, port=args.port, user=args.user).start()
    try:
        if args.sample:
            stored = server.upload(_sample_series(folder / "samples"))
            print(f"stored {stored} sample instances")
        print(f"DICOMweb: {server.url}\nuser:     {server.user}\npassword: {server.password}\n"
              f"storage:  {folder}\n(Ctrl-C stops it)", flush=True)
        while server.process.poll() is None:
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


def cmd_samples(args) -> int:
    from annotator.samples import available_samples, data_root

    root = data_root()
    print(f"data folder: {root or '(none found; set ANNOTATOR_DATA)'}")
    for s in available_samples():
        print(f"  {s.id:<16} {s.modality:<3} {s.title}")
    return 0


def cmd_open(args) -> int:
    from annotator.io import read_volume
    from annotator.samples import load_sample

    if args.path:
        volume = read_volume(args.path)
    else:
        volume, label = load_sample(args.sample)
        if label is not None:
            print(f"reference label: values {sorted(int(v) for v in np.unique(label))}")
    print(volume.summary())
    return 0


def cmd_bench(args) -> int:
    from annotator.bench import module
    from annotator.bench import report as rep

    rep.check_outputs(args.json, args.md, getattr(args, "plot", None))  # before the run, not after it
    result = module(args.benchmark).run(args)
    rep.write(result, args.json, args.md)
    print(rep.markdown(result))
    return 0


class _Parser(argparse.ArgumentParser):
    """Usage mistakes get one line too, like every other error (the usage is in --help).
    A value that starts with a minus and a digit is a value, lists too (``--window
    -175,250``), not an option."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-\d[\d.,eE+-]*$")

    def error(self, message: str):
        self.exit(2, f"annotator: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="annotator", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"annotator {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("info", help="modality, size and spacing of an image; series in a folder")
    p.add_argument("path", help="image file or folder with DICOM series")
    p.add_argument("--series", help="series as listed (SeriesInstanceUID, with /PART for one acquisition of "
                   "several) or its index in the listing (default: largest)")
    p.set_defaults(func=cmd_info)

    def on_image(name: str, help: str, out: str, func) -> argparse.ArgumentParser:
        """A command that segments one image and writes the label to ``--out``."""
        command = sub.add_parser(name, help=help)
        command.add_argument("image", help="image file, DICOM series folder or DICOM file")
        command.add_argument("--out", required=True, help=out + "; .dcm: a DICOM SEG of a DICOM image, "
                             ".rtstruct.dcm: an RT Structure Set")
        command.add_argument("--series", help="series of a DICOM folder, or volume of a 4-D file from 0 (default: the "
                             "largest series, the first volume)")
        command.set_defaults(func=func)
        return command

    def correcting(command) -> None:
        command.add_argument("--label", help="a label in IMAGE's geometry to correct (as in the app: on a "
                             "DeepEdit answer, its probability joins GraphCut; a network takes background "
                             "clicks alone); --out then holds the whole label")
        command.add_argument("--value", type=_label_value, help="with --label: the structure corrected "
                             "(default 1)")

    p = on_image("scribbles", "segment from scribbles (1 = foreground, 2 = background)",
                 "output label (.nii.gz): 1 = foreground", cmd_scribbles)
    p.add_argument("--scribbles", required=True, help="label file in IMAGE's geometry")
    correcting(p)
    p = on_image("clicks", "segment from foreground/background clicks", "output label (.nii.gz): 1 = foreground",
                 cmd_clicks)
    p.add_argument("--fg", type=_xyz, action="append", metavar="X,Y,Z",
                   help="foreground click, voxel index as ITK counts (repeatable)")
    p.add_argument("--bg", type=_xyz, action="append", metavar="X,Y,Z", help="background click")
    p.add_argument("--method", default="auto", help="method name (default: best available)")
    correcting(p)
    p = on_image("tidy", "fill a structure's holes, keep its largest part, fill between the slices it is "
                 "drawn on, smooth it, grow or shrink it by a margin, clip it to a range of intensities or "
                 "flood it through one",
                 "output label (.nii.gz): the label with the structure tidied", cmd_tidy)
    p.add_argument("--label", required=True, help="label file in IMAGE's geometry")
    p.add_argument("--step", required=True,
                   choices=["fill_holes", "keep_largest", "fill_between", "smooth", "grow", "shrink", "clip",
                            "flood"])
    p.add_argument("--mm", type=float, help="grow, shrink: how far its surface moves, mm (default 3)")
    p.add_argument("--range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                   help="clip, flood: the intensities (both ends in; HU on a CT) the structure is clipped to, or "
                        "the background within them connected to it joins it")
    p.add_argument("--value", type=_label_value, default=1, help="the structure's label value (default 1)")
    p.add_argument("--slices", choices=["z", "y", "x"], default="z",
                   help="the slices it works on: across the image's z (default), y or x axis, as ITK counts")
    p = on_image("infer", "automatic segmentation with a DeepEdit model (no clicks)",
                 "output label (.nii.gz) with the model's label values", cmd_infer)
    p.add_argument("--model", help="model name (bundled or in the user models folder); default: the one made "
                                   "for such an image (its modality and size), as Auto-segment chooses")

    p = sub.add_parser("train", help="train or fine-tune a DeepEdit/DeepGrow model in a child process")
    p.add_argument("--method", choices=["deepedit", "deepgrow3d", "deepgrow2d"])
    p.add_argument("--data", action="append", help="datastore or dataset folder (images/ + labels/); repeatable")
    p.add_argument("--split", default="all", choices=["all", "train", "test"],
                   help="cases of a dataset folder's split.json (default all)")
    p.add_argument("--name", help="model name (default: method and process id)")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--iterations", type=int, default=0, help="stop after this many iterations (default: epochs)")
    p.add_argument("--max-minutes", type=float, default=0.0, help="stop after this many minutes")
    p.add_argument("--batch-size", type=int, default=0, help="default: planned (see `annotator plan`)")
    p.add_argument("--patch", type=_patch, default=None, metavar="X,Y,Z", help="training crop (default: planned)")
    p.add_argument("--spacing", type=_spacing, default=None, metavar="X,Y,Z",
                   help="model grid spacing in mm (default: planned)")
    p.add_argument("--modality", default="unknown", help="modality the model is for (CT, MR)")
    p.add_argument("--variant", default="",
                   help="network size: small (CPU), medium (DeepEdit/DeepGrow 3D: the DeepEdit starter's) or "
                        "sample-app (default: that of the model fine-tuned, else small)")
    p.add_argument("--init", default="scratch", help="scratch, active (fine-tune the model in use) or a model name")
    p.add_argument("--resume", help="run folder to continue")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--learning-rate", type=float,
                   help="Adam's rate at the start, decaying to 0 over the iterations or the time limit "
                        "(default 1e-3; lower to fine-tune a good model)")
    p.add_argument("--val-every", type=int, default=1, help="validate every N epochs (default 1)")
    p.add_argument("--no-activate", action="store_true", help="do not use the new model for clicks")
    p.add_argument("--config", help="a training config JSON instead of the options above")
    p.add_argument("--verbose", action="store_true", help="one line per progress event")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("status", help="the images of a datastore with status, label versions and score")
    p.add_argument("place", help="folder of images, or a DICOMweb URL (http://user@host/dicom-web)")
    p.add_argument("--json", action="store_true", help='a list of {"id", "status", "versions", "score"}')
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("stats", help="each structure's volume and the image's intensities in it (HU on a CT), "
                       "for every image with a final label")
    p.add_argument("place", help="folder of images, or a DICOMweb URL (http://user@host/dicom-web)")
    p.add_argument("--csv", help="also write the table as CSV: image, value, name, voxels, volume_ml, mean, sd, "
                                 "min, median, max")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("export", help="the labelled images and their final labels as a data set in nnU-Net's "
                       "layout (imagesTr, labelsTr, dataset.json)")
    p.add_argument("place", help="folder of images, or a DICOMweb URL (http://user@host/dicom-web)")
    p.add_argument("--out", required=True, help="a new (or empty) folder")
    p.add_argument("--channels", action="store_true",
                   help="also the volumes shown with each image (a 4-D file's other volumes, a case's other "
                        "channel files, a series' other acquisitions) as channels, in one order for every case")
    p.add_argument("--verbose", action="store_true", help="say each case as it is written")
    p.set_defaults(func=cmd_export)

    from annotator.active.strategies import DEFAULT, STRATEGIES

    p = sub.add_parser("rank", help="the unlabeled images of a datastore, the ones to label first at the top")
    p.add_argument("place", help="folder of images, or a DICOMweb URL (http://user@host/dicom-web)")
    p.add_argument("--strategy", default=DEFAULT, choices=list(STRATEGIES),
                   help="; ".join(f"{k}: {v}" for k, v in STRATEGIES.items()) + f" (default: {DEFAULT})")
    p.add_argument("--seed", type=int, default=0, help="seed of random (and of epistemic's dropout)")
    p.add_argument("--json", action="store_true", help='a list of {"id", "score", "strategy"}, highest first')
    p.set_defaults(func=cmd_rank)

    p = sub.add_parser("models", help="the installed models; import one trained elsewhere (MONAI Label, a MONAI bundle)")
    msub = p.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=_Parser)
    m = msub.add_parser("list", help="installed models (* marks the one each method uses)")
    m.set_defaults(func=cmd_models_list)
    m = msub.add_parser("use", help="make a model the one its method uses")
    m.add_argument("name")
    m.set_defaults(func=cmd_models_use)
    m = msub.add_parser("calibrate", help="choose on labelled images how a model is used (DeepGrow: where its first "
                                          "answer is cut; DeepEdit: how the worklist weighs its scores), as "
                                          "training does; the sidecar is rewritten (a bundled model's: "
                                          "a copy, NAME-calibrated, in the user models folder)")
    m.add_argument("name")
    m.add_argument("--data", help="a folder or datastore with final labels (default: where the model was trained; "
                                  "only its validation cases when its sidecar names them and they are there)")
    m.set_defaults(func=cmd_models_calibrate)
    m = msub.add_parser("import", help="a MONAI Label sample-app checkpoint (.pt state dict) or a MONAI bundle folder")
    m.add_argument("path", help="the .pt file (read with weights_only; a full pickle is refused) or bundle folder")
    m.add_argument("--method", required=True, choices=["deepedit", "deepgrow3d", "deepgrow2d"])
    m.add_argument("--labels", type=_labels,
                   help="deepedit: the labels in the order of the model's label list, e.g. spleen=1,liver=2,background=0 "
                        "(its click channels follow that order; background last when not given; a bundle gives them)")
    m.add_argument("--window", type=_window, metavar="LOW,HIGH",
                   help="the intensities the model's training mapped to 0..1 (ScaleIntensityRanged a_min,a_max; "
                        "default: a bundle's, else MONAI Label's: DeepEdit -175,250, DeepGrow (x - 208) / 388)")
    m.add_argument("--spacing", type=_spacing, metavar="X,Y,Z",
                   help="the spacing it was trained at, mm (it then answers on crops resampled to it); "
                        "default: a bundle's Spacingd, else MONAI Label's DeepGrow's 1,1,1")
    m.add_argument("--input-size", type=_patch, metavar="X,Y,Z",
                   help="deepedit: the size whole images were resized to in its training (MONAI's Resized "
                        "spatial_size); default without --spacing: a bundle's Resized, else 128,128,128 (MONAI Label's)")
    m.add_argument("--roi", type=_patch, metavar="X,Y,Z",
                   help="click crop on the model grid (default: MONAI Label's DeepGrow 3D 192,192,128, "
                        "2D 256,256, else 128,128,128)")
    m.add_argument("--name", help="model name (default: method and file name)")
    m.add_argument("--modality", default="unknown", help="CT or MR: the images it is for")
    m.set_defaults(func=cmd_models_import)

    p = sub.add_parser("plan", help="the training settings chosen for a datastore's labelled images and this machine")
    p.add_argument("data", nargs="+", help="datastore or dataset folders (or DICOMweb URLs)")
    p.add_argument("--split", default="all", choices=["all", "train", "test"], help="cases of a dataset's split.json")
    p.add_argument("--json", action="store_true", help="the plan as JSON")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("accept", help="make a label file the final label of an image")
    p.add_argument("place", help="folder of images, or a DICOMweb URL (http://user@host/dicom-web)")
    p.add_argument("image_id", help="the image's id (see `annotator status`)")
    p.add_argument("label", help="label map in the image's geometry (NIfTI, NRRD, MHA, MGZ), a DICOM SEG or RT "
                   "Structure Set of its series, or the id of one of its label maps (`annotator status` lists them: "
                   "a folder of masks, say)")
    p.set_defaults(func=cmd_accept)

    p = sub.add_parser("label", help="write a saved label version of an image as NIfTI or DICOM SEG")
    p.add_argument("place", help="folder of images, or a DICOMweb URL (http://user@host/dicom-web)")
    p.add_argument("image_id", help="the image's id (see `annotator status`)")
    p.add_argument("--version", default="final", type=_label_version, metavar="VERSION",
                   help="final (the default), original (what was first proposed), draft, or earlier-N: the N-th "
                        "final accepted before the current one (earlier-1 the last; the newest 10 are kept)")
    p.add_argument("--out", required=True,
                   help="output label: .nii.gz, .dcm for a DICOM SEG of the image's DICOM series, or a name ending "
                        "in rtstruct.dcm for an RT Structure Set (case.rtstruct.dcm)")
    p.set_defaults(func=cmd_label)

    p = sub.add_parser("dicomweb", help="a DICOMweb server (Orthanc and others)")
    web = p.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=_Parser)

    def server_action(name: str, help: str, func, login: bool = False) -> argparse.ArgumentParser:
        """An action on the server at ``url``, with the options that say how to reach it."""
        action = web.add_parser(name, help=help)
        action.add_argument("url", help="DICOMweb root, e.g. http://host:8042/dicom-web")
        action.add_argument("--user", help="HTTP basic user (or name it in the URL: http://user@host/...); without "
                            "one the secret is a bearer token" if login else "HTTP basic user, or name it in the "
                            "URL (password: keyring or ANNOTATOR_DICOMWEB_PASSWORD)")
        if not login:
            action.add_argument("--token", help="bearer token")
        action.add_argument("--ca-bundle", help="CA certificates to trust for https (default: the system's)")
        action.set_defaults(func=func)
        return action

    w = server_action("list", "the server's image series: study UID, series UID, modality, description, instances",
                      cmd_dicomweb_list)
    w.add_argument("--modality", help="e.g. CT (wildcards * and ? work in every filter)")
    w.add_argument("--patient", help="patient name, e.g. 'Smith*' or 'Smith^John'")
    w.add_argument("--description", help="series description, e.g. '*FLAIR*'")
    w.add_argument("--date", type=_study_date,
                   help="study date YYYYMMDD, a range YYYYMMDD-YYYYMMDD (either end may be left open), "
                        "or a year or month (2020, 202003)")
    w = server_action("pull", "a series as DICOM files (through the local cache)", cmd_dicomweb_pull)
    w.add_argument("series_uid", help="SeriesInstanceUID (see `annotator dicomweb list`)")
    w.add_argument("--out", required=True, help="folder for the files")
    w = server_action("push-seg", "send a NIfTI label in a series' geometry as DICOM SEG; prints its UID",
                      cmd_dicomweb_push_seg)
    w.add_argument("series_uid", help="the labelled series' SeriesInstanceUID")
    w.add_argument("label", help="NIfTI label on that series' grid")
    w.add_argument("--names", help="segment names for the label values in ascending order, e.g. liver,spleen")
    w.add_argument("--algorithm", help="the model that contributed (SEMIAUTOMATIC); default: MANUAL")
    w = server_action("pull-seg", "a server SEG as a NIfTI label in its source series' geometry",
                      cmd_dicomweb_pull_seg)
    w.add_argument("seg_uid", help="the SEG's SOPInstanceUID, or the SeriesInstanceUID of a series of one SEG")
    w.add_argument("--out", required=True, help="output label (.nii.gz; .dcm: a DICOM SEG, .rtstruct.dcm: an RT "
                   "Structure Set, of the source series)")
    server_action("send", "send the accepted labels that wait for the server (the app sends them when it "
                  "connects); exits 1 while any still wait", cmd_dicomweb_send)
    w = server_action("login", "check a password (with --user) or a bearer token and keep it in the keyring",
                      cmd_dicomweb_login, login=True)
    w.add_argument("--stdin", action="store_true", help="read the secret from standard input, not a prompt")

    p = sub.add_parser("orthanc", help="a local Orthanc server to try server mode")
    orth = p.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=_Parser)
    o = orth.add_parser("serve", help="start Orthanc on 127.0.0.1 with authentication; Ctrl-C stops it")
    o.add_argument("--sample", action="store_true", help="store the sample DICOM series in it")
    o.add_argument("--port", type=_port, help="HTTP port (default: a free one)")
    o.add_argument("--user", default="annotator", help="user name (a password is generated)")
    o.add_argument("--folder", help="storage folder (default: a new temporary one)")
    o.set_defaults(func=cmd_orthanc_serve)

    p = sub.add_parser("samples", help="list the sample data available here")
    p.set_defaults(func=cmd_samples)

    p = sub.add_parser("open", help="open an image or a sample (prints its summary)")
    p.add_argument("path", nargs="?", help="image, DICOM folder or DICOM file (default: a sample)")
    p.add_argument("--sample", default="hippocampus", help="sample id (see `annotator samples`)")
    p.set_defaults(func=cmd_open)

    from annotator.bench import options

    p = sub.add_parser("bench", help="benchmarks (JSON + markdown results)")
    bench_sub = p.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK", parser_class=_Parser)
    for name, (_module, text) in options.BENCHMARKS.items():
        b = bench_sub.add_parser(name, help=text)
        b.add_argument("--json", help="write results as JSON")
        b.add_argument("--md", help="write a markdown table")
        b.add_argument("--quick", action="store_true", help="small version (under a minute)")
        options.add_arguments(name, b)
        b.set_defaults(func=cmd_bench)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"annotator: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    import warnings

    warnings.showwarning = _show_warning  # one line, no source code
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except AnnotatorError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"annotator: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # what reads the output stopped (`| head`): nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # and nothing at exit either
        return 1
    except OSError as exc:  # a file the person named cannot be used: say which and why
        if args.debug:
            traceback.print_exc()
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"annotator: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("annotator: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # anything unforeseen still gets one line, not a traceback
        if args.debug:
            traceback.print_exc()
        print(f"annotator: unexpected error: {type(exc).__name__}: {exc} (run with --debug for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
