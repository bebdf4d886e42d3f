"""`annotator bench dicomweb`: opening a series from a local Orthanc, cold and cached, against a
plain HTTP download of the same instances in the same run (the series' WADO-RS GET, the
request the cache makes, saved to one file and flushed, as ``curl -o`` and ``sync``
would; three alternated runs of each, medians); the first worklist page of a server
with many series, and a refresh of its worklist once listed; memory while a series
downloads.

The server is a :class:`~annotator.datastore.orthanc.LocalOrthanc` started for the run
with a generated CT (512×512, 200 slices; quick: 40) and many one-slice series.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import requests

from annotator.bench import report as rep
from annotator.datastore.dicomweb import Credentials, DicomwebServer
from annotator.datastore.orthanc import LocalOrthanc
from annotator.datastore.remote import DicomwebDatastore
from annotator.datastore.series_cache import SeriesCache
from annotator.io.phantom import ORGANS, ct_phantom
from annotator.io.read import read_volume
from annotator.io.seg import series_seg


def _write_series(volume, folder: Path, description: str) -> list[Path]:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    dz, dy, dx = volume.array_spacing
    for z, plane in enumerate(volume.array):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / f"{z:04d}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality, ds.SeriesDescription, ds.PatientName, ds.PatientID = "CT", description, "Bench^CT", "BENCH"
        ds.InstanceNumber, ds.ImagePositionPatient = z + 1, [0.0, 0.0, float(z * dz)]
        ds.ImageOrientationPatient, ds.PixelSpacing = [1, 0, 0, 0, 1, 0], [dy, dx]
        ds.SliceThickness, ds.Rows, ds.Columns = dz, plane.shape[0], plane.shape[1]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.RescaleIntercept, ds.RescaleSlope = 0, 1
        ds.PixelData = np.ascontiguousarray(plane, np.int16).tobytes()
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files


def _memory_mb(field: str) -> float:
    """``VmHWM`` (peak) or ``VmRSS`` (now) of this process, MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _plain_download(session: requests.Session, url: str, target: Path) -> float:
    """The series' WADO-RS answer saved to one file, as a plain download does (1 MB chunks,
    flushed to disk at the end); MB transferred."""
    total = 0
    with session.get(url, stream=True, timeout=60,
                     headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}) as answer:
        answer.raise_for_status()
        with open(target, "wb") as f:
            for chunk in answer.iter_content(2**20):
                f.write(chunk)
                total += len(chunk)
            f.flush()
            os.fsync(f.fileno())
    return total / 2**20


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: the peak RSS starts again from now
    except OSError:
        pass


def run(args: argparse.Namespace) -> dict:
    slices = args.slices or (40 if args.quick else 200)
    many = args.series or (100 if args.quick else 1000)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        volume, organs = ct_phantom(shape=(slices, 512, 512), spacing_zyx=(1.0, 0.7, 0.7), seed=0)
        files = _write_series(volume, folder / "ct", "bench CT")
        series_mb = sum(p.stat().st_size for p in files) / 2**20
        tiny = [p for i in range(many) for p in _write_series(
            ct_phantom(shape=(1, 16, 16), seed=i)[0], folder / f"tiny{i}", f"tiny {i}")]
        with LocalOrthanc(folder / "server") as server:
            server.upload(files + tiny)
            client = DicomwebServer(server.url, Credentials(server.user, server.password), timeout=60)
            row = next(client.series(description="bench CT"))
            uids = client.instances(row.study_uid, row.series_uid)
            raw = requests.Session()
            raw.auth = (server.user, server.password)
            raw_runs, cold_runs, download_mb = [], [], 0.0
            for run_ in range(3):  # alternated, medians: the machine is shared
                start = time.perf_counter()
                raw_mb = _plain_download(raw, f"{server.url}/studies/{row.study_uid}/series/{row.series_uid}",
                                         folder / "raw.bin")
                raw_runs.append(time.perf_counter() - start)
                cache = SeriesCache(client, root=folder / f"cache{run_}")
                _reset_peak()
                before = _memory_mb("VmRSS")
                start = time.perf_counter()
                path = cache.fetch(row.study_uid, row.series_uid)
                cold_runs.append(time.perf_counter() - start)
                download_mb = max(download_mb, _memory_mb("VmHWM") - before)
            raw_s, cold_s = float(np.median(raw_runs)), float(np.median(cold_runs))
            read_volume(path)  # the first read
            start = time.perf_counter()
            cached = read_volume(cache.fetch(row.study_uid, row.series_uid))
            cached_s = time.perf_counter() - start
            np.testing.assert_array_equal(cached.array, volume.array.astype(np.int16))
            start = time.perf_counter()
            listing = client.series(page=200)
            next(listing)
            first_page_s = time.perf_counter() - start
            total = 1 + sum(1 for _ in listing)
            all_s = time.perf_counter() - start
            store = DicomwebDatastore(client, cache=SeriesCache(client, root=folder / "store"))
            store.records()  # the server's list, asked once
            start = time.perf_counter()
            worklist = len(store.records())  # as the worklist asks at every save, open and upload
            refresh_s = time.perf_counter() - start
            image = store.open_image(row.series_uid)  # (downloaded into the store's cache: not timed)
            names = {value: name for value, name, *_ in ORGANS}
            start = time.perf_counter()
            store.accept(row.series_uid, organs, image, names=names)  # the SEG made, queued and sent
            accept_s = time.perf_counter() - start
            [seg] = client.series(modality="SEG", images_only=False)
            [sop_uid] = client.instances(seg.study_uid, seg.series_uid)
            sent_mb = len(client.instance_bytes(seg.study_uid, seg.series_uid, sop_uid)) / 2**20
            plain_mb = len(series_seg(organs, image, names)[1]) / 2**20
    results = [
        rep.result("cold_open_s", cold_s, "s", "lower"),
        rep.result("raw_download_s", raw_s, "s", "lower"),
        rep.result("cold_over_raw", cold_s / raw_s, "ratio", "lower", 1.3),
        rep.result("cached_open_s", cached_s, "s", "lower", 1.0),
        rep.result("first_page_s", first_page_s, "s", "lower", 1.0),
        rep.result("all_series_s", all_s, "s", "lower"),
        rep.result("worklist_refresh_s", refresh_s, "s", "lower", 0.1),
        rep.result("download_peak_mb", download_mb, "MB", "lower"),
        rep.result("series_mb", series_mb, "MB", "lower"),
        rep.result("transferred_mb", raw_mb, "MB", "lower"),
        rep.result("accept_s", accept_s, "s", "lower"),
        rep.result("seg_sent_mb", sent_mb, "MB", "lower"),
        rep.result("seg_plain_mb", plain_mb, "MB", "lower"),
    ]
    params = {"series": f"512x512x{slices} int16 CT", "instances": len(uids), "server_series": total,
              "worklist_rows": worklist,
              "page": 200, "quick": bool(args.quick),
              "download_peak": "rise of the process's peak resident memory during the download",
              "raw_download": "the series' WADO-RS answer saved to one file and flushed; median of 3",
              "accept": "the phantom's 3 organs accepted on the CT: the SEG built, queued and sent (deflated); "
                        "seg_plain_mb: the same SEG uncompressed"}
    return rep.report("dicomweb", params, results)
