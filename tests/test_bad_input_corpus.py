"""A corpus of malformed and unusual inputs, made here (nothing binary is committed), fed to
the `annotator` commands as a person would: every one is refused with exit status 2 and
one line on stderr that names the file (or argument) and the problem: no traceback, no
hang, bounded memory. The well-formed controls still open.
"""

from __future__ import annotations

import gzip
import os
import resource
import shutil
import struct
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from paths import DATA, HIPPO

SOURCE = HIPPO / "images" / "hippocampus_001.nii.gz"
SERIES = DATA / "udacity_study3_mr_dicom" / "11_HCropVolume"
MEMORY_LIMIT = 3 * 2**30  # address space of each command: a declared 8 GB volume must not be allocated


def _nifti(path: Path, array=None, edit=None, gz: bool = True) -> Path:
    """A NIfTI written by nibabel, then its header bytes edited: ``edit(header_bytes) -> bytes``."""
    array = np.arange(8 * 9 * 10, dtype=np.int16).reshape(8, 9, 10) if array is None else array
    plain = path.with_name(path.name.replace(".gz", "") + ".tmp.nii")
    nib.save(nib.Nifti1Image(array, np.diag([1.0, 1.0, 1.0, 1.0])), plain)
    raw = plain.read_bytes()
    plain.unlink()
    if edit is not None:
        raw = edit(bytearray(raw))
    path.write_bytes(gzip.compress(bytes(raw)) if gz else bytes(raw))
    return path


def _put(fmt: str, offset: int, *values):
    def edit(raw: bytearray) -> bytearray:
        struct.pack_into("<" + fmt, raw, offset, *values)
        return raw
    return edit


def _series(folder: Path, change) -> Path:
    """A copy of the 40-slice MR series with ``change(index, dataset)`` applied (sorted by position)."""
    folder.mkdir(parents=True)
    files = sorted(SERIES.iterdir(), key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]))
    for i, source in enumerate(files):
        ds = pydicom.dcmread(source)
        change(i, ds)
        ds.save_as(folder / source.name)
    return folder


def _bare_bytes(source: Path) -> bytes:
    """A DICOM file's data set alone, implicit VR little endian: no preamble, "DICM" or file meta."""
    import io

    from pydicom.filebase import DicomFileLike
    from pydicom.filewriter import write_dataset

    buffer = io.BytesIO()
    out = DicomFileLike(buffer)
    out.is_little_endian, out.is_implicit_VR = True, True
    write_dataset(out, pydicom.Dataset(pydicom.dcmread(source)))
    return buffer.getvalue()


def _set(tag: str, value, at: int | None = 7):
    def change(i, ds):
        if at is None or i == at:
            setattr(ds, tag, value)
    return change


def build_corpus(root: Path) -> list[tuple[str, list[str], str]]:
    """(case id, command line after `annotator`, text the one-line error must contain)."""
    root.mkdir(parents=True, exist_ok=True)
    cases: list[tuple[str, list[str], str]] = []

    def info(name: str, path: Path, expect: str | None = None):
        cases.append((name, ["info", str(path)], expect or path.name))

    good = root / "good.nii.gz"
    shutil.copy(SOURCE, good)
    raw = gzip.decompress(SOURCE.read_bytes())

    # -- files that are empty, tiny, cut short or not NIfTI at all
    for size in (0, 1, 10, 50, 200, 347):
        p = root / f"tiny{size}.nii"
        p.write_bytes(os.urandom(size))
        info(f"tiny-{size}-nii", p)
        q = root / f"tiny{size}.nii.gz"
        q.write_bytes(gzip.compress(raw[:size]) if size else b"")
        info(f"tiny-{size}-gz", q)
    for fraction in (0.05, 0.3, 0.6, 0.95, 0.999):
        p = root / f"cut{fraction}.nii.gz"
        data = SOURCE.read_bytes()
        p.write_bytes(data[: int(len(data) * fraction)])
        info(f"cut-gz-{fraction}", p)
        q = root / f"cut{fraction}.nii"
        q.write_bytes(raw[: max(352, int(len(raw) * fraction))])
        info(f"cut-nii-{fraction}", q)
    # a whole gzip stream whose voxel data stops short, trailer consistent with it
    short = root / "short-stream.nii.gz"
    short.write_bytes(gzip.compress(raw[: len(raw) - 1000]))
    info("short-stream", short)
    # an 87-byte file declaring 1024x1024x4096 int16 voxels (8 GB)
    huge = root / "huge.nii.gz"
    header = bytearray(raw[:352])
    struct.pack_into("<8h", header, 40, 3, 1024, 1024, 4096, 1, 1, 1, 1)
    struct.pack_into("<2h", header, 70, 4, 16)
    huge.write_bytes(gzip.compress(bytes(header)))
    info("huge-declared", huge, "GB")
    for name, text in (("text", b"hello, not an image\n" * 40), ("png", b"\x89PNG\r\n\x1a\n" + os.urandom(400))):
        p = root / f"{name}.nii.gz"
        p.write_bytes(text)
        info(f"not-nifti-{name}", p)

    # -- broken headers
    edits = {
        "dim0-zero": _put("h", 40, 0), "dim0-eight": _put("h", 40, 8), "dim-negative": _put("h", 42, -5),
        "dim-zero": _put("h", 44, 0), "datatype-unknown": _put("h", 70, 999),
        "bitpix-mismatch": _put("h", 72, 8), "float-bitpix-mismatch": _put("2h", 70, 16, 8),
        "voxoffset-negative": _put("f", 108, -40.0), "voxoffset-nan": _put("f", 108, float("nan")),
        "voxoffset-inside-header": _put("f", 108, 100.0), "voxoffset-fraction": _put("f", 108, 352.5),
        "voxoffset-beyond-end": _put("f", 108, 1e7), "sizeof-hdr": _put("i", 0, 123),
        "magic": lambda r: r[:344] + b"xyz\0" + r[348:],
        "qform-nan": lambda r: _put("f", 256, float("nan"))(_put("h", 252, 1)(r)),
        "sform-inf": lambda r: _put("f", 280, float("inf"))(_put("h", 254, 1)(r)),
        "sform-degenerate": lambda r: _put("12f", 280, *([0.0] * 12))(_put("2h", 252, 0, 1)(r)),
    }
    for axis in (1, 2, 3):
        for value in (0.0, float("nan"), float("inf"), -0.0):
            edits[f"pixdim{axis}-{value}"] = _put("f", 76 + 4 * axis, value)
    for name, edit in edits.items():
        for gz in (True, False):
            path = root / f"{name}.nii{'.gz' if gz else ''}"
            _nifti(path, edit=edit, gz=gz)
            info(f"header-{name}-{'gz' if gz else 'nii'}", path)

    # -- images that are not a single 3-D volume, and NaN
    for name, array in (("2d", np.zeros((8, 9), np.int16)), ("5d", np.zeros((8, 9, 10, 2, 2), np.int16)),
                        ("1d", np.zeros((8,), np.int16)),
                        ("allnan", np.full((8, 9, 10), np.nan, np.float32)),
                        ("allinf", np.full((8, 9, 10), -np.inf, np.float32))):
        info(f"shape-{name}", _nifti(root / f"{name}.nii.gz", array))
    four = _nifti(root / "4d.nii.gz", np.zeros((8, 9, 10, 2), np.int16))  # two volumes: no third
    cases.append(("shape-4d-volume", ["info", str(four), "--series", "2"], "no volume '2'"))

    # -- NRRD and MetaImage headers with detached data
    for name, value in (("abs", "/etc/passwd"), ("up", "../secret.raw"), ("sub", "sub/data.raw"),
                        ("list", "LIST"), ("pattern", "slice%03d.raw 1 3 1"), ("missing", "nothere.raw"),
                        ("hidden", ".hidden.raw")):
        p = root / f"detached-{name}.nhdr"
        p.write_text("NRRD0004\ntype: uint8\ndimension: 3\nsizes: 4 4 4\nencoding: raw\n"
                     f"data file: {value}\n")
        info(f"nhdr-{name}", p)
        m = root / f"detached-{name}.mhd"
        m.write_text("ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementType = MET_UCHAR\n"
                     f"ElementDataFile = {value}\n")
        info(f"mhd-{name}", m)
    (root / "sub").mkdir()
    nrrd_bad = {
        "nrrd-garbage": "NRRD0004\ntype: blob\nsizes: x y\n\n",
        "nrrd-huge": "NRRD0004\ntype: int16\ndimension: 3\nsizes: 4096 4096 4096\nencoding: raw\n\n",
        "nrrd-spacing-zero": "NRRD0004\ntype: uint8\ndimension: 3\nsizes: 4 4 4\nspacings: 0 1 1\nencoding: raw\n\n",
        "nrrd-spacing-nan": "NRRD0004\ntype: uint8\ndimension: 3\nsizes: 4 4 4\nspacings: nan 1 1\nencoding: raw\n\n",
        "nrrd-short": "NRRD0004\ntype: uint8\ndimension: 3\nsizes: 40 40 40\nencoding: raw\n\n",
        "mha-spacing-zero": "ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementSpacing = 0 1 1\n"
                            "ElementType = MET_UCHAR\nElementDataFile = LOCAL\n",
        "mha-short": "ObjectType = Image\nNDims = 3\nDimSize = 40 40 40\nElementType = MET_UCHAR\n"
                     "ElementDataFile = LOCAL\n",
        "mha-huge": "ObjectType = Image\nNDims = 3\nDimSize = 4096 4096 4096\nElementType = MET_SHORT\n"
                    "ElementDataFile = LOCAL\n",
    }
    image = sitk.ReadImage(str(SOURCE))
    for name, compressed in (("mha-cut", False), ("mha-cut-compressed", True), ("mhd-cut", False),
                             ("nrrd-cut", False), ("nrrd-cut-compressed", True)):
        p = root / f"{name}.{name.split('-')[0]}"
        sitk.WriteImage(image, str(p), useCompression=compressed)
        data = p.with_suffix(".raw") if name.startswith("mhd") else p
        data.write_bytes(data.read_bytes()[: int(data.stat().st_size * 0.8)])
        info(name, p, f"{p.name}: file is truncated: ")  # ITK: "No such file or directory", "fread got only"
    for name, text in nrrd_bad.items():
        p = root / f"{name}.{'nrrd' if name.startswith('nrrd') else 'mha'}"
        p.write_bytes(text.encode() + (bytes(64) if "short" in name or "spacing" in name else b""))
        info(name, p)

    # -- things that are not regular files
    fifo = root / "pipe.nii.gz"
    os.mkfifo(fifo)
    info("fifo", fifo)
    (root / "dir.nii.gz").mkdir()
    info("folder-named-like-a-file", root / "dir.nii.gz")
    link = root / "passwd.nii"
    link.symlink_to("/etc/passwd")
    info("link-to-passwd", link)
    info("missing", root / "nothing.nii.gz")
    (root / "long").mkdir()
    info("name-too-long", root / "long" / ("x" * 300 + ".nii.gz"))

    # -- DICOM series
    for name, change in (
        ("ipp-nan", _set("ImagePositionPatient", [0.0, float("nan"), 1.0])),
        ("ipp-inf", _set("ImagePositionPatient", [0.0, 0.0, float("inf")])),
        ("ipp-short", _set("ImagePositionPatient", [0.0, 0.0])),
        ("iop-nan", _set("ImageOrientationPatient", [1.0, 0.0, 0.0, 0.0, float("nan"), 0.0], None)),
        ("iop-nan-one", _set("ImageOrientationPatient", [1.0, 0.0, 0.0, 0.0, float("nan"), 0.0])),  # not a plane
        ("iop-zero", _set("ImageOrientationPatient", [0.0] * 6, None)),
        ("iop-skew", _set("ImageOrientationPatient", [1.0, 0.0, 0.0, 0.7, 0.7, 0.0], None)),
        ("spacing-zero", _set("PixelSpacing", [0.0, 1.0], 3)),
        ("spacing-nan", _set("PixelSpacing", [float("nan"), 1.0], 3)),
        ("spacing-negative", _set("PixelSpacing", [-1.0, 1.0], None)),
        ("rows", _set("Rows", 25)),
    ):
        cases.append((f"dicom-{name}", ["info", str(_series(root / f"dicom-{name}", change))], f"dicom-{name}"))
    mixed = _series(root / "dicom-spacing-mixed", _set("PixelSpacing", [0.7, 0.7]))  # one slice of 0.7 mm pixels
    cases.append(("dicom-spacing-mixed", ["info", str(mixed)], "series mixes pixel spacings: 1 x 1 mm in 39 files"))
    # files of a bare data set (no preamble, as older archives hold them), cut short
    bare = root / "dicom-bare-truncated"
    bare.mkdir()
    for i, source in enumerate(sorted(SERIES.iterdir())):
        data = _bare_bytes(source)
        (bare / f"IM{i:04d}").write_bytes(data[: len(data) - 500] if i == 7 else data)
    cases.append(("dicom-bare-truncated", ["info", str(bare)], "IM0007: file is truncated"))
    cut = root / "dicom-pixels-cut"
    shutil.copytree(SERIES, cut)
    last = sorted(cut.iterdir())[7]
    last.write_bytes(last.read_bytes()[:-500])  # the file is still longer than its pixels alone
    cases.append(("dicom-pixels-cut", ["info", str(cut)], f"{last.name}: file is truncated"))
    fragment = root / "dicom-bare-fragment"
    fragment.mkdir()
    (fragment / "IM0000").write_bytes(_bare_bytes(next(SERIES.iterdir()))[:200])
    cases.append(("dicom-bare-fragment", ["info", str(fragment / "IM0000")], "IM0000"))
    empty = root / "empty-folder"
    empty.mkdir()
    cases.append(("dicom-empty-folder", ["info", str(empty)], "empty-folder"))
    texts = root / "text-folder"
    texts.mkdir()
    (texts / "a.txt").write_text("x")
    cases.append(("dicom-no-series", ["info", str(texts)], "text-folder"))

    # -- labels and clicks given to the engine commands
    image = read_good = str(good)
    wrong = _nifti(root / "label-wrong-shape.nii.gz", np.zeros((4, 4, 4), np.uint8))
    for name, label in (("fraction", np.full((35, 51, 35), 0.5, np.float32)),
                        ("negative", np.full((35, 51, 35), -1, np.int16)),
                        ("nan", np.full((35, 51, 35), np.nan, np.float32))):
        path = root / f"label-{name}.nii.gz"
        src = sitk.ReadImage(str(SOURCE))
        img = sitk.GetImageFromArray(label)
        img.CopyInformation(src)
        sitk.WriteImage(img, str(path))
        cases.append((f"scribbles-label-{name}", ["scribbles", image, "--scribbles", str(path), "--out",
                                                  str(root / "o.nii.gz")], path.name))
    cases.append(("scribbles-wrong-shape", ["scribbles", image, "--scribbles", str(wrong), "--out",
                                            str(root / "o.nii.gz")], wrong.name))
    cases.append(("scribbles-bad-image", ["scribbles", str(root / "cut0.3.nii.gz"), "--scribbles", str(wrong),
                                          "--out", str(root / "o.nii.gz")], "cut0.3.nii.gz"))
    for name, click, expect in (("outside", "--fg=999,0,0", "outside the image"),
                                ("negative", "--fg=-1,2,3", "outside the image"),
                                ("two-numbers", "--fg=1,2", "'1,2' is not X,Y,Z"), ("words", "--fg=a,b,c", "not X,Y,Z"),
                                ("dash", "--fg", "--fg")):
        cases.append((f"clicks-{name}", ["clicks", image, click, "--out", str(root / "o.nii.gz"),
                                         "--method", "graphcut"], expect))
    cases.append(("clicks-bad-method", ["clicks", image, "--fg", "5,5,5", "--out", str(root / "o.nii.gz"),
                                        "--method", "magic"], "unknown method 'magic'"))
    cases.append(("infer-unknown-model", ["infer", image, "--model", "nope", "--out", str(root / "o.nii.gz")],
                  "no model named 'nope'"))
    for name, out in (("out-long-name", root / ("y" * 300 + ".nii.gz")), ("out-not-nifti", root / "o.png"),
                      ("out-is-folder", root / "dir.nii.gz"), ("out-in-proc", Path("/proc/self/x.nii.gz"))):
        cases.append((name, ["clicks", image, "--fg", "17,25,17", "--out", str(out), "--method", "graphcut"],
                      out.name))
    return cases


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def _run(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "ANNOTATOR_MAX_VOLUME_GB": "2"}
    return subprocess.run([sys.executable, "-m", "annotator", *args], capture_output=True, text=True,
                          timeout=120, preexec_fn=_limit_memory, env=env)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("corpus"))


def test_the_corpus_is_refused_clearly(corpus):
    assert len(corpus) >= 100
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = list(pool.map(lambda case: _run(case[1]), corpus))
    wrong = []
    for (name, args, expect), proc in zip(corpus, runs):
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        problems = []
        if proc.returncode != 2:
            problems.append(f"exit {proc.returncode}")
        if len(lines) != 1:
            problems.append(f"{len(lines)} stderr lines")
        if "Traceback" in proc.stderr:
            problems.append("traceback")
        if lines and (not lines[-1].startswith("annotator: error: ") or expect not in lines[-1]):
            problems.append(f"message does not name {expect!r}")
        if problems:
            wrong.append(f"{name}: {', '.join(problems)}: {proc.stderr.strip()[-300:]}")
    print(f"\n{len(corpus)} malformed inputs, {len(corpus) - len(wrong)} refused clearly")
    assert not wrong, "\n".join(wrong)


def test_the_controls_still_open(tmp_path):
    good = tmp_path / "good.nii.gz"
    shutil.copy(SOURCE, good)
    nan = _nifti(tmp_path / "somenan.nii.gz", np.where(np.arange(720).reshape(8, 9, 10) % 7, 1.0, np.nan)
                 .astype(np.float32))
    nan_plain = _nifti(tmp_path / "somenan.nii", np.where(np.arange(720).reshape(8, 9, 10) % 7, 1.0, np.nan)
                       .astype(np.float32), gz=False)
    nhdr = tmp_path / "ok.nhdr"
    (tmp_path / "ok.raw").write_bytes(bytes(range(64)))
    nhdr.write_text("NRRD0004\ntype: uint8\ndimension: 3\nsizes: 4 4 4\nencoding: raw\ndata file: ok.raw\n")
    for path in (good, nan, nan_plain, nhdr, SERIES, DATA / "dcmqi_ct3slice_seg" / "liver_seg.nrrd"):
        proc = _run(["info", str(path)])
        assert proc.returncode == 0, proc.stderr
    proc = _run(["info", str(nan)])
    assert "103 NaN/infinite voxels replaced" in proc.stdout  # NIfTI keeps the NaN rule
