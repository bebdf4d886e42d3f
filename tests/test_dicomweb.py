"""The DICOMweb side against a real Orthanc started here (127.0.0.1, free port, temporary
storage, authentication on): search with paging and wildcards, clear errors, no secrets."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from annotator.datastore.dicomweb import Credentials, DicomwebServer, qido_value
from annotator.datastore.orthanc import LocalOrthanc, available
from annotator.errors import DatastoreError, ServerError
from paths import DATA

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))
STUDY = DATA / "udacity_study3_mr_dicom"
MANY = 520


def _tiny_series(folder, n: int, modality: str = "MR") -> list:
    """``n`` single-slice series (MR unless told) of one patient each (names Pat^0000 ...),
    written with a preamble."""
    files = []
    for i in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"{i}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
        ds.PatientName, ds.PatientID, ds.Modality = f"Pat^{i:04d}", f"P{i:04d}", modality
        ds.StudyDate = f"2021{1 + i % 12:02d}15"
        ds.SeriesDescription = f"tiny series {i}"
        ds.Rows = ds.Columns = 4
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.PixelData = np.zeros((4, 4), np.uint16).tobytes()
        path = folder / f"{i}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    folder = tmp_path_factory.mktemp("orthanc")
    with LocalOrthanc(folder, token="s3cret-token") as server:
        files = [p for name in ("11_HCropVolume", "11-T1post-18670", "36468-FLAIRreg-58706")
                 for p in sorted((STUDY / name).iterdir())]
        tiny = folder / "tiny"
        tiny.mkdir()
        server.upload(files + _tiny_series(tiny, MANY))
        yield server


def _client(orthanc, **kw) -> DicomwebServer:
    return DicomwebServer(orthanc.url, Credentials(orthanc.user, orthanc.password, **kw))


def _crop_on(server):
    """(store, record, volume) of the study's hippocampus crop series uploaded to ``server``."""
    from annotator.datastore.remote import DicomwebDatastore

    server.upload(sorted((STUDY / "11_HCropVolume").iterdir()))
    store = DicomwebDatastore(_client(server))
    [record] = store.records()
    return store, record, store.open_image(record.id)


def test_paging_finds_every_series(orthanc):
    rows = list(_client(orthanc).series(page=100))
    assert len(rows) == MANY + 3
    assert len({r.series_uid for r in rows}) == MANY + 3
    hippo = next(r for r in rows if r.description == "HippoCrop")
    assert (hippo.modality, hippo.instances) == ("MR", 40)


@pytest.mark.parametrize("filters,expected", [
    ({"patient": "Albus^Dumbledore"}, {"HippoCrop", "T1post", "FLAIR_reg"}),
    ({"patient": "albus^dumbledore"}, {"HippoCrop", "T1post", "FLAIR_reg"}),  # names match in any case
    ({"patient": "Albus*"}, {"HippoCrop", "T1post", "FLAIR_reg"}),
    ({"patient": "Albus^Dumbledore", "description": "*FLAIR*"}, {"FLAIR_reg"}),
    ({"description": "T1?ost"}, {"T1post"}),
    ({"description": "tiny series 1?"}, {f"tiny series 1{i}" for i in range(10)}),  # the space matters
    ({"patient": "Pat^000*"}, {f"tiny series {i}" for i in range(10)}),
    ({"date": "20200121"}, {"HippoCrop", "T1post", "FLAIR_reg"}),
    ({"date": "20210301-20210331", "patient": "Pat^00*"}, {f"tiny series {i}" for i in range(2, 100, 12)}),
])
def test_wildcards_spaces_and_carets_work(orthanc, filters, expected):
    assert {r.description for r in _client(orthanc).series(**filters)} == expected


def test_query_values_keep_wildcards_and_do_not_send_spaces_or_carets():
    assert qido_value("Smith^J*") == "Smith?J*"
    assert qido_value("AX FLAIR?") == "AX?FLAIR?"
    assert qido_value("a&b=c") == "a%26b%3Dc"


def test_a_wrong_password_is_named_and_never_printed(orthanc):
    with pytest.raises(DatastoreError, match="refused the credentials") as err:
        list(DicomwebServer(orthanc.url, Credentials(orthanc.user, "not-the-password")).series())
    assert orthanc.url in str(err.value) and "not-the-password" not in str(err.value)
    proc = subprocess.run([sys.executable, "-m", "annotator", "dicomweb", "list", orthanc.url, "--user", "annotator"],
                          capture_output=True, text=True, timeout=60,
                          env={"ANNOTATOR_DICOMWEB_PASSWORD": "wrong-pass-123", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert orthanc.url in proc.stderr and "wrong-pass-123" not in proc.stderr + proc.stdout
    assert "wrong-pass-123" not in repr(Credentials("annotator", "wrong-pass-123"))


def test_a_bearer_token(orthanc):
    good = DicomwebServer(orthanc.url, Credentials(token="s3cret-token"))
    assert len(list(good.series(description="HippoCrop"))) == 1
    with pytest.raises(DatastoreError, match="refused the credentials") as err:
        list(DicomwebServer(orthanc.url, Credentials(token="wrong-token")).series())
    assert "wrong-token" not in str(err.value)


def test_a_server_that_is_down_or_not_dicomweb_is_named_quickly(orthanc):
    from annotator.datastore.orthanc import free_port

    start = time.monotonic()
    down = f"http://127.0.0.1:{free_port()}/dicom-web"
    with pytest.raises(DatastoreError, match="cannot connect") as err:
        list(DicomwebServer(down).series())
    assert down in str(err.value) and time.monotonic() - start <= 5
    with pytest.raises(DatastoreError, match=r"does not answer as a DICOMweb server \(HTTP 404 for series\): is "
                                             r".*/no-such-root its DICOMweb root\?"):
        list(DicomwebServer(orthanc.root + "/no-such-root", Credentials(orthanc.user, orthanc.password)).series())
    with pytest.raises(DatastoreError, match=r"\(HTTP 400 for series\): is .* its DICOMweb root\? \(an Orthanc's: "
                                             + re.escape(orthanc.root + "/dicom-web)")):
        list(DicomwebServer(orthanc.root, Credentials(orthanc.user, orthanc.password)).series())  # its REST root


@pytest.mark.parametrize(("url", "said"), [
    ("pacs.example.org/dicom-web", "starts with http:// or https://"),  # no scheme
    ("ftp://pacs.example.org/dicom-web", "starts with http:// or https://"),
    ("https://", "names the host"),
    ("http://127.0.0.1:80420/dicom-web", "not a valid URL (Port out of range"),
    ("http://127.0.0.1:web/dicom-web", "not a valid URL (Port could not be cast"),
    ("http://[::1/dicom-web", "not a valid URL (Invalid IPv6 URL)"),
])
def test_a_url_that_names_no_server_says_so(url, said):
    """Every command and the Connect dialog take a URL through ``parsed_url``: what is wrong
    with it is said, not requests' or urllib's exception."""
    commands = [["dicomweb", "list", url], ["dicomweb", "list", url, "--user", "someone"]]
    for command in commands + ([["status", url]] if "://" in url else []):  # else a path for status
        proc = subprocess.run([sys.executable, "-m", "annotator", *command], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode != 0 and f"annotator: error: {url}: " in proc.stderr and said in proc.stderr, \
            proc.stderr
        assert "unexpected" not in proc.stderr and "Traceback" not in proc.stderr


def test_a_study_date_is_a_day_a_range_a_year_or_a_month(orthanc):
    """`dicomweb list --date` takes what DICOM queries take, and a year or a month as the
    range of its days, a day as ISO 8601 writes it that day; a date that is none is refused before the server is asked (it
    listed nothing, as if no study had that date)."""
    def listed(date):
        return subprocess.run([sys.executable, "-m", "annotator", "dicomweb", "list", orthanc.url, "--token",
                               "s3cret-token", f"--date={date}"], capture_output=True, text=True, timeout=60)

    on_the_day = {row.split("\t")[1] for row in listed("20200121").stdout.splitlines()}
    assert len(on_the_day) == 3  # the study of 2020-01-21
    for date in ("2020-01-21", "2020", "202001", "20200101-20200131", "20200121-", "-20200121"):
        proc = listed(date)
        assert proc.returncode == 0 and on_the_day <= {row.split("\t")[1] for row in proc.stdout.splitlines()}, date
    assert listed("2019").stdout == "" and listed("202002").stdout == ""
    for date, said in (("21.01.2020", "'21.01.2020' is not a date YYYYMMDD"), ("202013", "no month 13"),
                       ("20200230", "'20200230' is not a date YYYYMMDD"), ("last week", "is not a date")):
        proc = listed(date)
        assert proc.returncode == 2 and said in proc.stderr, proc.stderr


def test_cli_lists_image_series(orthanc):
    proc = subprocess.run([sys.executable, "-m", "annotator", "dicomweb", "list", orthanc.url, "--token",
                           "s3cret-token", "--modality", "MR", "--patient", "Albus^Dumbledore"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    assert sorted(r[3] for r in rows) == ["FLAIR_reg", "HippoCrop", "T1post"]
    assert all(len(r) == 5 and r[2] == "MR" for r in rows)
    assert {r[4] for r in rows} == {"40", "22"}
    assert str(pydicom.dcmread(next((STUDY / "11-T1post-18670").iterdir())).StudyInstanceUID) in {r[0] for r in rows}


def test_pull_through_the_cache_resume_and_offline(tmp_path, monkeypatch):
    from annotator.datastore.series_cache import SeriesCache
    from annotator.io import read_volume

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    source = STUDY / "11_HCropVolume"
    with LocalOrthanc(tmp_path / "server") as server:
        server.upload(sorted(source.iterdir()))
        client = _client(server)
        row = next(client.series(description="HippoCrop"))
        cache = SeriesCache(client)

        def stop_at(n):
            def progress(done, total):
                if done >= n:
                    raise KeyboardInterrupt  # as a person's cancel or a kill would stop it
            return progress

        with pytest.raises(KeyboardInterrupt):
            cache.fetch(row.study_uid, row.series_uid, progress=stop_at(25))
        assert cache.cached(row.study_uid, row.series_uid) is None  # half a series is never taken for one
        partial = cache.folder(row.study_uid, row.series_uid).with_name(row.series_uid + ".partial")
        kept = {p.name: p.stat().st_mtime_ns for p in partial.glob("*.dcm")}
        assert 25 <= len(kept) < 40
        # a write killed halfway leaves a .part file, never a truncated instance
        (partial / "1.2.3.part").write_bytes(b"DICM-but-cut")
        fetched, real = [], client.instance_bytes
        client.instance_bytes = lambda *args: fetched.append(args[-1]) or real(*args)
        progress = []
        folder = cache.fetch(row.study_uid, row.series_uid, progress=lambda d, t: progress.append((d, t)))
        assert progress[0] == (len(kept), 40) and progress[-1] == (40, 40)
        assert {p.name: p.stat().st_mtime_ns for p in folder.glob("*.dcm") if p.name in kept} == kept  # resumed
        assert len(fetched) == 40 - len(kept) and not list(folder.glob("*.part"))  # the few missing, one by one
        np.testing.assert_array_equal(read_volume(folder).array, read_volume(source).array)
        # a cached file cut short is found out: the series downloads again
        victim = next(folder.glob("*.dcm"))
        victim.write_bytes(victim.read_bytes()[:100])
        assert cache.cached(row.study_uid, row.series_uid) is None
        folder = cache.fetch(row.study_uid, row.series_uid)
        np.testing.assert_array_equal(read_volume(folder).array, read_volume(source).array)
        proc = subprocess.run([sys.executable, "-m", "annotator", "dicomweb", "pull", server.url, row.series_uid,
                               "--out", str(tmp_path / "out"), "--user", server.user], capture_output=True, text=True,
                              timeout=120, env={**os.environ, "ANNOTATOR_DICOMWEB_PASSWORD": server.password})
        assert proc.returncode == 0, proc.stderr
        assert len(list((tmp_path / "out").glob("*.dcm"))) == 40
    # the server is gone: the series still opens
    start = time.monotonic()
    assert cache.fetch(row.study_uid, row.series_uid) == folder and time.monotonic() - start < 1
    assert read_volume(folder).shape == (40, 50, 34)


def test_a_series_streams_in_one_request_with_bounded_memory(orthanc):
    """The multipart answer is split as it arrives: parts come out whole, in order, from
    chunks of any size (here 7 bytes: boundaries straddle chunks)."""
    from annotator.datastore.dicomweb import multipart_parts

    parts = [b"first\r\n--not-the-boundary", b"", b"\r\n\r\nthird"]
    body = b"".join(b"--B\r\nContent-Type: application/dicom\r\n\r\n" + p + b"\r\n" for p in parts) + b"--B--\r\n"
    for size in (1, 7, len(body)):
        chunks = [body[i:i + size] for i in range(0, len(body), size)]
        assert list(multipart_parts(chunks, 'multipart/related; type="application/dicom"; boundary=B')) == parts
    client = _client(orthanc)
    row = next(client.series(description="HippoCrop"))
    streamed = list(client.iter_series(row.study_uid, row.series_uid, chunk=4096))
    assert len(streamed) == 40 and all(p[128:132] == b"DICM" for p in streamed)


def test_the_shared_ct_series_comes_back_voxel_for_voxel(tmp_path):
    from annotator.datastore.series_cache import SeriesCache
    from annotator.io import read_volume

    from annotator.datastore.orthanc import series_with_uids

    source = DATA / "totalsegmentator_example" / "example_ct_dicom"
    with LocalOrthanc(tmp_path / "server") as server:
        server.upload(series_with_uids(source, tmp_path / "ct"))  # the shared files have empty UIDs
        client = _client(server)
        [row] = client.series(modality="CT")
        seen = []
        folder = SeriesCache(client, root=tmp_path / "cache").fetch(row.study_uid, row.series_uid,
                                                                     progress=lambda d, t: seen.append(d))
        assert seen == sorted(seen) and seen[-1] == row.instances == 20 and len(set(seen)) > 10  # step by step
    original, fetched = read_volume(source), read_volume(folder)
    assert fetched.shape == original.shape == (20, 512, 512)
    np.testing.assert_array_equal(fetched.array, original.array)
    assert fetched.same_geometry(original, rtol=1e-6)


def test_the_cache_keeps_to_its_size_and_spares_pinned_series(tmp_path):
    from annotator.datastore.series_cache import SeriesCache

    cache = SeriesCache(DicomwebServer("http://127.0.0.1:1/dicom-web"), root=tmp_path, cap_gb=2.5e-6)  # ~2.7 kB
    folders = []
    for i in range(4):
        folder = cache.folder("1.2", f"1.2.{i}")
        folder.mkdir(parents=True)
        (folder / "1.dcm").write_bytes(b"x" * 1000)
        (folder / "manifest.json").write_text(json.dumps({"instances": ["1"], "last_used": i}))
        folders.append(folder)
    removed = cache.trim(keep=[folders[0]])
    assert folders[0].exists() and not folders[1].exists()  # the oldest unpinned went first
    assert removed and cache.size() <= cache.cap + 200


def test_push_seg_and_pull_seg_give_back_the_same_label(tmp_path, monkeypatch):
    from annotator.io import read_label, read_volume, write_label

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    ct = DATA / "dcmqi_ct3slice_seg"
    with LocalOrthanc(tmp_path / "server") as server:
        server.upload(sorted((ct / "ct-3slice").iterdir()) + [ct / "liver.dcm"])
        env = {**os.environ, "ANNOTATOR_DICOMWEB_PASSWORD": server.password, "XDG_CACHE_HOME": str(tmp_path / "cache")}

        def cli(*args):
            return subprocess.run([sys.executable, "-m", "annotator", "dicomweb", *map(str, args), "--user",
                                   server.user], capture_output=True, text=True, timeout=120, env=env)

        rows = {r.description: r for r in _client(server).series()}
        assert list(rows) == [""]  # the CT; the SEG already there is not an image series
        series = rows[""].series_uid
        volume = read_volume(ct / "ct-3slice")
        label = read_label(ct / "liver_spine_seg.nrrd", volume)
        write_label(tmp_path / "label.nii.gz", label, volume)
        pushed = cli("push-seg", server.url, series, tmp_path / "label.nii.gz", "--names", "liver,vertebra")
        assert pushed.returncode == 0, pushed.stderr
        uid = pushed.stdout.strip()
        pulled = cli("pull-seg", server.url, uid, "--out", tmp_path / "back.nii.gz")
        assert pulled.returncode == 0, pulled.stderr
        np.testing.assert_array_equal(read_label(tmp_path / "back.nii.gz", volume), label)
        # the SEG that was on the server already opens as its label
        existing = str(pydicom.dcmread(ct / "liver.dcm").SOPInstanceUID)
        assert cli("pull-seg", server.url, existing, "--out", tmp_path / "liver.nii.gz").returncode == 0
        np.testing.assert_array_equal(read_label(tmp_path / "liver.nii.gz", volume),
                                      read_label(ct / "liver_seg.nrrd", volume))
        assert "is a CT instance" in cli("pull-seg", server.url, str(volume.source.sop_uids[0]), "--out",
                                         tmp_path / "x.nii.gz").stderr
        # a SEG named by its series' UID (as `dicomweb list`'s neighbours show series) is found too
        seg_series = str(pydicom.dcmread(ct / "liver.dcm").SeriesInstanceUID)
        assert cli("pull-seg", server.url, seg_series, "--out", tmp_path / "by_series.nii.gz").returncode == 0
        np.testing.assert_array_equal(read_label(tmp_path / "by_series.nii.gz", volume),
                                      read_label(ct / "liver_seg.nrrd", volume))
        said = cli("pull-seg", server.url, series, "--out", tmp_path / "x.nii.gz").stderr
        assert "is CT series" in said and "not a segmentation" in said
        assert "no instance or series 1.2.3.4" in cli("pull-seg", server.url, "1.2.3.4", "--out",
                                                       tmp_path / "x.nii.gz").stderr


def test_a_seg_already_on_the_server_opens_as_the_series_label(tmp_path, monkeypatch):
    from annotator.datastore import Status
    from annotator.datastore.remote import DicomwebDatastore
    from annotator.io import read_label

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    ct = DATA / "dcmqi_ct3slice_seg"
    with LocalOrthanc(tmp_path / "server") as server:
        server.upload(sorted((ct / "ct-3slice").iterdir()) + [ct / "liver.dcm"])
        store = DicomwebDatastore(_client(server))
        [record] = store.records()  # the SEG series is not an image to annotate
        # labelled before it is opened here: the SEG refers to it (its series is the label's)
        assert record.status == Status.LABELED and record.info["labelled_on_server"] and record.versions == []
        volume = store.open_image(record.id)
        label = store.label(record.id, volume)
        np.testing.assert_array_equal(label, read_label(ct / "liver_seg.nrrd", volume))
        record = store.record(record.id)
        assert record.status == Status.LABELED and "final" in record.versions and not store.uploads.entries()
        assert "labelled_on_server" not in record.info  # its label is here now
        assert store.label_names() == {"liver": 1}  # the SEG's segment name: the Label list offers it
        # a label accepted here names its segments as given; the names stay with the store
        both = label.copy()
        both[0, :10, :10] = 3
        store.accept(record.id, both, volume, names={1: "liver", 2: "spleen", 3: "vertebra"})
        assert DicomwebDatastore(_client(server)).label_names() == {"liver": 1, "vertebra": 3}


def test_a_series_labelled_on_another_workstation_is_labeled_before_it_is_opened(tmp_path, monkeypatch):
    """Two workstations on one server: a series labelled and sent from one was "unlabeled"
    on the other until it was opened there, so Next and Score offered it to be labelled a
    second time. The SEGs on the server say which series they label (their metadata,
    asked for once per SEG series and remembered, offline too)."""
    from annotator.datastore import Status
    from annotator.datastore.dicomweb import DicomwebServer
    from annotator.datastore.remote import DicomwebDatastore
    from annotator.datastore.series_cache import SeriesCache

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    asked = []
    labelled_by = DicomwebServer._labelled_by
    monkeypatch.setattr(DicomwebServer, "_labelled_by", lambda self, row: asked.append(row) or labelled_by(self, row))

    def workstation(server, root):
        return DicomwebDatastore(_client(server), SeriesCache(_client(server), tmp_path / root))

    with LocalOrthanc(tmp_path / "server") as server:
        server.upload(sorted((STUDY / "11_HCropVolume").iterdir()) + sorted((STUDY / "11-T1post-18670").iterdir()))
        here = workstation(server, "here")
        done, other = sorted(r.id for r in here.records())
        volume = here.open_image(done)
        label = np.zeros(volume.shape, np.uint8)
        label[5:10, 10:20, 10:20] = 1
        here.accept(done, label, volume, names={1: "hippocampus"})
        assert len(asked) == 0  # this workstation listed the server before the SEG was there

        there = workstation(server, "there")
        records = {r.id: r for r in there.records()}
        assert records[done].status == Status.LABELED and records[done].info["labelled_on_server"]
        assert records[done].versions == [] and records[other].status == Status.UNLABELED
        assert len(asked) == 1
        said = subprocess.run([sys.executable, "-m", "annotator", "status",
                               server.url.replace("http://", f"http://{server.user}@")], capture_output=True, text=True,
                              timeout=120, env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cli"),
                                                "ANNOTATOR_DICOMWEB_PASSWORD": server.password}).stdout
        assert "1 labeled" in said and re.search(rf"{done}\s+labeled\s+on the server", said), said
        assert {r.id: r.status for r in there.reloaded().records()}[done] == Status.LABELED
        assert len(asked) == 1  # listed again: the SEG series is known
        np.testing.assert_array_equal(there.label(done, there.open_image(done)), label)
        assert "final" in there.record(done).versions
        third = workstation(server, "third")
        third.records()
    offline = workstation(server, "third")  # the server stopped: the list and its labels as seen last
    records = {r.id: r for r in offline.records()}
    assert records[done].status == Status.LABELED and records[other].status == Status.UNLABELED


def test_a_newer_label_from_another_workstation_replaces_the_one_kept_here(tmp_path, monkeypatch):
    """Two workstations editing one series: one that kept a final label of it went on
    opening that one after the other sent a newer label to the server. The newer one is
    marked in the worklist and opens now, the one kept before staying as its earlier
    version; a label sent from here is not taken for a newer one, nor is one made before
    the final here (the server's newest, by content date and time, is the one both take)."""
    import io

    from annotator.annotation.session import image_labels
    from annotator.datastore import Status
    from annotator.datastore.dicomweb import DicomwebServer
    from annotator.datastore.remote import DicomwebDatastore
    from annotator.datastore.series_cache import SeriesCache
    from annotator.io.seg import series_seg

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    asked = []
    labels_of = DicomwebServer.labels_of
    monkeypatch.setattr(DicomwebServer, "labels_of", lambda self, *a: asked.append(a) or labels_of(self, *a))

    def workstation(server, root):
        return DicomwebDatastore(_client(server), SeriesCache(_client(server), tmp_path / root))

    def box(volume, corner):
        label = np.zeros(volume.shape, np.uint8)
        label[corner:corner + 5, 10:20, 10:20] = 1
        return label

    with LocalOrthanc(tmp_path / "server") as server:
        server.upload(sorted((STUDY / "11_HCropVolume").iterdir()))
        here = workstation(server, "here")
        [image_id] = [r.id for r in here.records()]
        volume = here.open_image(image_id)
        here.accept(image_id, box(volume, 0), volume, names={1: "hippocampus"})
        there = workstation(server, "there")
        theirs = there.open_image(image_id)
        np.testing.assert_array_equal(there.label(image_id, theirs), box(volume, 0))
        there.accept(image_id, box(volume, 10), theirs, names={1: "hippocampus"})

        here = here.reloaded()
        record = here.record(image_id)
        assert record.info.get("newer_on_server") and record.versions_shown()[-1] == "newer on the server"
        assert record.status == Status.LABELED
        volume = here.open_image(image_id)
        label, _, saved = image_labels(here, image_id, volume)  # as the app opens it
        np.testing.assert_array_equal(label, box(volume, 10))  # theirs, on the old: box 0
        assert any("newer label" in w for w in volume.warnings)
        assert [key for key, _ in saved] == ["earlier-1", "original"]  # Earlier offers the one kept before
        np.testing.assert_array_equal(here.earlier_label(image_id, volume), box(volume, 0))
        record = here.record(image_id)
        assert "newer_on_server" not in record.info and record.versions_shown()[-1] != "newer on the server"
        asked.clear()
        assert np.array_equal(here.label(image_id, volume), box(volume, 10)) and asked == []  # seen: not asked again

        here.accept(image_id, box(volume, 20), volume, names={1: "hippocampus"})
        here = here.reloaded()  # its own SEG listed now: not a newer one
        assert "newer_on_server" not in here.record(image_id).info
        np.testing.assert_array_equal(here.label(image_id, volume), box(volume, 20))
        assert asked == []
        there = there.reloaded()
        assert there.record(image_id).info.get("newer_on_server")
        np.testing.assert_array_equal(there.label(image_id, theirs), box(volume, 20))

        # sent from a third workstation but made before the final here (it was offline): the
        # server's newest is still the one here, which both keep
        _, data = series_seg(box(volume, 25), volume, {1: "hippocampus"})
        late = pydicom.dcmread(io.BytesIO(data))
        late.ContentDate, late.ContentTime = "20000101", "120000"
        late.save_as(tmp_path / "late.dcm")
        server.upload([tmp_path / "late.dcm"])
        here, there = here.reloaded(), there.reloaded()
        assert here.record(image_id).info.get("newer_on_server")
        for store, image in ((here, volume), (there, theirs)):
            np.testing.assert_array_equal(store.label(image_id, image), box(volume, 20))
            assert "newer_on_server" not in store.record(image_id).info


def test_a_server_lost_while_its_labels_are_read_keeps_what_it_answered(tmp_path, monkeypatch):
    """The first listing of a server asks each label series on it which series it labels:
    with thousands that takes a while, and it said nothing meanwhile; a listing cancelled
    or a server lost midway kept none of the answers, so the next listing asked every one
    again. Now the count is heard as it goes, and what was answered is kept."""
    from annotator.annotation.jobs import Cancelled, Job
    from annotator.datastore import Status, dicomweb
    from annotator.datastore.orthanc import free_port
    from annotator.datastore.remote import DicomwebDatastore
    from annotator.datastore.series_cache import SeriesCache
    from annotator.io import read_volume
    from annotator.io.seg import series_seg

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(dicomweb, "METADATA_REQUESTS", 1)  # one at a time: where it stops is known
    asked, lost_at = [], []
    labelled_by = DicomwebServer._labelled_by

    def ask(self, row):
        asked.append(row.series_uid)
        if len(asked) in lost_at:
            server.stop()  # lost while the labels are read
        return labelled_by(self, row)

    monkeypatch.setattr(DicomwebServer, "_labelled_by", ask)

    def listed(progress=None):
        """The series' status by description, the series listed afresh."""
        client = _client(server)
        store = DicomwebDatastore(client, SeriesCache(client, tmp_path / "here"), progress=progress)
        return {"HippoCrop" if "HippoCrop" in r.name else "T1post": r.status for r in store.records()}

    def counted(*steps, of):
        return [(f"reading which series the server's labels refer to ({n} of {of})", n / of) for n in steps]

    port = free_port()
    server = LocalOrthanc(tmp_path / "server", port=port).start()
    try:
        server.upload(sorted((STUDY / "11_HCropVolume").iterdir()) + sorted((STUDY / "11-T1post-18670").iterdir()))
        volume = read_volume(STUDY / "11_HCropVolume")
        label = np.zeros(volume.shape, np.uint8)
        label[5:10, 10:20, 10:20] = 1
        for _ in range(5):
            sop_uid, data = series_seg(label, volume, {1: "hippocampus"})
            _client(server).store(data, sop_uid)
        heard = []

        def cancelled_at_the_second(text, fraction):  # Cancel pressed as the second count shows
            heard.append((text, fraction))
            if len(heard) == 2:
                job.cancel()

        job = Job("opening", cancelled_at_the_second)
        with pytest.raises(Cancelled):  # the job's next report (the third answer's) stops it
            listed(job.report)
        assert heard == counted(1, 2, of=5)
        answered, heard[:], asked[:], lost_at[:] = set(asked[:3]), [], [], [2]
        records = listed(lambda text, fraction: heard.append((text, fraction)))
    finally:
        server.stop()
    assert records == {"HippoCrop": Status.LABELED, "T1post": Status.UNLABELED}
    assert heard == counted(1, of=2) and not answered & set(asked)
    answered |= {asked[0]}
    server = LocalOrthanc(tmp_path / "server", port=port).start()
    try:
        asked[:], lost_at[:] = [], []
        assert listed()["HippoCrop"] == Status.LABELED
        assert len(asked) == 1 and not answered & set(asked)  # the four answered are not asked again
        asked.clear()
        listed()
        assert asked == []
    finally:
        server.stop()


def test_a_seg_from_another_workstation_keeps_the_values_its_names_had(tmp_path, monkeypatch):
    """A SEG numbers its segments 1..K: a label holding only "posterior" (2) is sent as
    segment 1, which says it is label value 2. Any workstation reads it back as 2."""
    from annotator.datastore.remote import DicomwebDatastore
    from annotator.datastore.series_cache import SeriesCache

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with LocalOrthanc(tmp_path / "server") as server:
        server.upload(sorted((STUDY / "11_HCropVolume").iterdir()) + sorted((STUDY / "11-T1post-18670").iterdir()))
        here = DicomwebDatastore(_client(server), SeriesCache(_client(server), tmp_path / "here"))
        both, only = sorted(r.id for r in here.records())
        names = {1: "anterior", 2: "posterior"}
        volume = here.open_image(both)
        label = np.zeros(volume.shape, np.uint8)
        label[5:10, 10:20, 10:20], label[12:16, 10:20, 10:20] = 1, 2
        here.accept(both, label, volume, names=names)
        other_volume = here.open_image(only)
        posterior = np.zeros(other_volume.shape, np.uint8)
        posterior[2:6, 30:40, 30:40] = 2
        here.accept(only, posterior, other_volume, names=names)

        there = DicomwebDatastore(_client(server), SeriesCache(_client(server), tmp_path / "there"))
        np.testing.assert_array_equal(there.label(both, there.open_image(both)), label)
        np.testing.assert_array_equal(there.label(only, there.open_image(only)), posterior)
        assert there.label_names() == {"anterior": 1, "posterior": 2}
        # a workstation that sees the one-segment SEG first: the segment says its value
        first = DicomwebDatastore(_client(server), SeriesCache(_client(server), tmp_path / "first"))
        np.testing.assert_array_equal(first.label(only, first.open_image(only)), posterior)
        assert first.label_names() == {"posterior": 2}


def test_a_server_as_a_datastore_uploads_exactly_once_after_an_outage(tmp_path, monkeypatch):
    from annotator.datastore import Status
    from annotator.datastore.orthanc import free_port
    from annotator.datastore.remote import DicomwebDatastore

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    port = free_port()
    first = LocalOrthanc(tmp_path / "server", port=port, password="pw-1234567").start()
    try:
        store, record, volume = _crop_on(first)
        assert record.status == Status.UNLABELED and "HippoCrop" in record.name
        first.upload(sorted((STUDY / "11-T1post-18670").iterdir()))  # listed when the list is reloaded
        assert [r.id for r in store.records()] == [record.id]  # the list as it was when opened
        store = store.reloaded()
        [other] = [r.id for r in store.records() if r.id != record.id]
        label = np.zeros(volume.shape, np.uint8)
        label[10:30, 15:35, 10:25] = 1
        store.accept(record.id, label, volume, names={1: "hippocampus"})
        assert store.record(record.id).status == Status.LABELED
        segs = lambda client: list(client.series(modality="SEG", images_only=False))  # noqa: E731
        assert len(segs(_client(first))) == 1
    finally:
        first.stop()
    # the server is down: the next accept waits in the queue, the worklist says so
    store.accept(record.id, label * 2, volume)
    again = DicomwebDatastore(_client(first))  # the app restarted, still offline
    assert again.record(record.id).status == Status.UPLOAD_FAILED
    assert again.uploads.entries()[0]["error"]
    assert again.open_image(record.id).shape == volume.shape  # downloaded before: opens offline
    with pytest.raises(ServerError, match=r"MR T1post \(.*\) is not downloaded here yet and needs the server: .*"
                                          r"cannot connect"):
        again.open_image(other)
    second = LocalOrthanc(tmp_path / "server", port=port, password="pw-1234567").start()
    try:
        assert again.send_pending(force=True) == (1, 0)
        assert again.send_pending(force=True) == (0, 0)
        assert len(segs(_client(second))) == 2  # both accepts, each stored once
        assert again.record(record.id).status == Status.LABELED
        import requests  # a series deleted on the server after it was listed: named as the worklist names it

        [found] = requests.post(f"{second.root}/tools/lookup", data=other, auth=(second.user, second.password)).json()
        requests.delete(f"{second.root}{found['Path']}", auth=(second.user, second.password)).raise_for_status()
        with pytest.raises(DatastoreError, match=r"^MR T1post: .*no series .* \(deleted from the server, or never"):
            again.open_image(other)
    finally:
        second.stop()


def test_a_refused_password_is_said_at_the_accept_and_not_tried_again_until_asked(tmp_path, monkeypatch):
    """The server's password changed during the session: the accept said only "saved", and
    the queue retried the refused password every few minutes, each refusal one more
    towards a locked account. Now the accept says why the label waits and how to send it;
    the automatic rounds and Reload leave a refused upload alone (one try, not one per
    label); Send now tries it, and connecting again with the new password sends it."""
    from annotator.annotation import AnnotationSession
    from annotator.datastore.orthanc import free_port
    from annotator.datastore.remote import DicomwebDatastore
    from annotator.datastore.uploads import SIGN_IN_AGAIN
    from annotator.errors import CredentialsError
    from annotator.settings import Settings

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    port = free_port()
    server = LocalOrthanc(tmp_path / "server", port=port, password="pw-old-1234").start()
    try:
        (tmp_path / "dx").mkdir()
        server.upload(_tiny_series(tmp_path / "dx", 1, "DX"))  # a radiograph: no row (one record below)
        store, record, volume = _crop_on(server)
        server.upload(sorted((STUDY / "11-T1post-18670").iterdir()))  # listed, never downloaded
        store = store.reloaded()
        [never] = [r.id for r in store.records() if r.id != record.id]
        session = AnnotationSession(settings=Settings())
        warnings, sign_in = [], []
        session.warning.connect(warnings.append)
        session.sign_in.connect(lambda place, why: sign_in.append((place, why)))
        session.set_datastore(store)
        session.open_image(record.id)
    finally:
        server.stop()
    server = LocalOrthanc(tmp_path / "server", port=port, password="pw-new-5678").start()
    try:
        with pytest.raises(CredentialsError, match="refused the credentials"):
            store.server.find_series(record.id)
        session.open_image(never)  # needs the server, which refuses: the app asks to sign in (its dialog)
        assert sign_in == [(store.place, sign_in[0][1])] and "MR T1post" in sign_in[0][1] and "(401)" in sign_in[0][1]
        assert session.image_id == record.id
        session.label[10:30, 15:35, 10:25] = 1
        session.painted()
        assert session.accept()
        [said] = warnings
        assert "saved here and waits to be sent" in said and "(401)" in said and SIGN_IN_AGAIN in said
        tries = lambda: [e["attempts"] for e in store.uploads.entries()]  # noqa: E731
        store.accept(record.id, session.label * 2, volume)  # another label: tries both, stops at the refusal
        assert tries() == [2, 0] and store.unsent()["refused"] and store.unsent(record.id)["refused"]
        for _ in range(3):  # the automatic rounds, however long after: each label is tried once
            assert store.uploads.flush(store.server.store, lambda uid: False, now=time.time() + 1e6) == (0, 2)
            assert tries() == [2, 1] and all(e["refused"] for e in store.uploads.entries())
        session.upload_check_s, warnings[:] = 0.0, []
        session.tick()
        assert tries() == [2, 1] and warnings == []  # left alone, and said once, not at every round
        session.send_uploads(force=True)  # Send now: tried, refused again, said; the round stops at the first
        assert tries() == [3, 1] and len(warnings) == 1 and "2 accepted labels wait" in warnings[0]
        for _ in range(2):  # Reload (F5) lists the server again (refused: said); it sent the labels at each press
            session.reload()
        assert tries() == [3, 1] and session.store.uploads_waiting() == 2, warnings
        def cli(*words, password):
            return subprocess.run([sys.executable, "-m", "annotator", *words], capture_output=True, text=True,
                                  timeout=120, env={**os.environ, "ANNOTATOR_DICOMWEB_PASSWORD": password})

        url = server.url.replace("http://", f"http://{server.user}@")
        shown = cli("status", url, password="pw-new-5678")
        assert "2 waiting to be sent (annotator dicomweb send)" in shown.stdout.splitlines()[0], shown.stderr
        refused = cli("dicomweb", "send", url, password="pw-old-1234")  # from the command line, the old one
        assert refused.returncode == 1 and "2 still waiting" in refused.stdout and "(401)" in refused.stderr
        assert "pw-old" not in refused.stdout + refused.stderr
        assert _client(server).find_series(record.id)  # the right password is let in
        session.set_datastore(DicomwebDatastore(_client(server)))  # signed in anew
        assert session.store.uploads_waiting() == 0  # connecting again sent both
        assert len(list(_client(server).series(modality="SEG", images_only=False))) == 2
        done = cli("dicomweb", "send", url, password="pw-new-5678")
        assert done.returncode == 0 and "no labels wait to be sent" in done.stdout
    finally:
        server.stop()


def test_ranking_a_servers_series_downloads_none_its_listing_says_no_model_knows(tmp_path, monkeypatch):
    """Score on a server's worklist opened every unlabeled series to learn its modality:
    a CT series (a whole CT, hundreds of MB on a real server) was downloaded only to be
    skipped by the MR model. The server's listing says the modality: such a series is
    skipped, with its reason, and stays on the server."""
    from annotator.active import rank
    from annotator.datastore.orthanc import series_with_uids
    from annotator.datastore.remote import DicomwebDatastore

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with LocalOrthanc(tmp_path / "server") as server:
        server.upload(sorted((STUDY / "11_HCropVolume").iterdir())
                      + series_with_uids(DATA / "totalsegmentator_example" / "example_ct_dicom", tmp_path / "ct"))
        store = DicomwebDatastore(_client(server))
        rows = {r.modality: r for r in store.server.series()}
        ids = {r.name.split()[0]: r.id for r in store.records()}
        ranking = rank(store, "tta")
        assert [r.id for r in ranking.ranked] == [ids["MR"]]
        assert "no deepedit model for CT images" in ranking.skipped[ids["CT"]]
        assert store.cache.cached(rows["CT"].study_uid, rows["CT"].series_uid) is None  # never downloaded
        assert store.cache.cached(rows["MR"].study_uid, rows["MR"].series_uid) is not None
        assert rank(store, "tta").skipped == ranking.skipped  # the next ranking the same, still without it


def test_an_empty_label_is_sent_and_replaces_the_one_before(tmp_path, monkeypatch):
    """"Nothing there" is an answer too. An empty label accepted on a server image was
    kept here only (a SEG holds at least one segment), and a label sent before stayed the
    server's newest: another workstation opened the image with the structure that had
    been taken away. It is sent as a SEG whose one segment has no voxels."""
    from annotator.datastore import Status
    from annotator.datastore.remote import DicomwebDatastore
    from annotator.datastore.series_cache import SeriesCache

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    server = LocalOrthanc(tmp_path / "server", password="pw-1234567").start()
    try:
        store, record, volume = _crop_on(server)
        segs = lambda: list(_client(server).series(modality="SEG", images_only=False))  # noqa: E731
        label = np.zeros(volume.shape, np.uint8)
        label[10:30, 15:35, 10:25] = 1
        assert store.accept(record.id, label, volume, names={1: "hippocampus"}) is None and len(segs()) == 1
        empty = np.zeros(volume.shape, np.uint8)
        assert store.accept(record.id, empty, volume, names={1: "hippocampus"}) is None
        assert len(segs()) == 2 and store.uploads_waiting() == 0
        assert store.record(record.id).status == Status.LABELED
        np.testing.assert_array_equal(store.label(record.id, volume), empty)

        def elsewhere(root):  # another workstation: its own cache and labels
            other = DicomwebDatastore(_client(server), SeriesCache(_client(server), tmp_path / root))
            return other.label(record.id, other.open_image(record.id))

        seen = elsewhere("there")
        assert seen is not None and not seen.any()  # the newest SEG: nothing there
        store.accept(record.id, label, volume, names={1: "hippocampus"})  # drawn again: the newest has it
        assert len(segs()) == 3
        np.testing.assert_array_equal(elsewhere("elsewhere"), label)
    finally:
        server.stop()


def test_a_multi_frame_image_on_the_server_is_annotated_like_a_series(tmp_path, monkeypatch, multiframe_mr):
    from annotator.datastore.remote import DicomwebDatastore
    from annotator.datastore.series_cache import SeriesCache
    from annotator.io import read_volume

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with LocalOrthanc(tmp_path / "server") as server:
        server.upload([multiframe_mr])
        store = DicomwebDatastore(_client(server))
        [record] = store.records()
        assert record.name == "MR HippoCrop (enhanced conversion) (1 image)"  # one file, as the server counts
        volume = store.open_image(record.id)
        assert [r.name for r in store.records()] == ["MR HippoCrop (enhanced conversion) (40 slices)"]  # once its frames are known
        series = read_volume(STUDY / "11_HCropVolume")
        np.testing.assert_array_equal(volume.array, series.array)
        assert volume.same_geometry(series, rtol=1e-6)
        label = np.zeros(volume.shape, np.uint8)
        label[10:30, 15:35, 10:25] = 1
        store.accept(record.id, label, volume, names={1: "hippocampus"})
        [seg] = _client(server).series(modality="SEG", images_only=False)
        # another workstation (its own cache and labels) gets the label from the SEG
        other = DicomwebDatastore(_client(server), cache=SeriesCache(_client(server), root=tmp_path / "other"))
        np.testing.assert_array_equal(other.label(record.id, other.open_image(record.id)), label)


def test_the_echoes_of_one_multi_frame_file_on_the_server_are_an_image_each(tmp_path, monkeypatch):
    """One enhanced file holding two echoes: once opened, each echo is an image; a SEG of
    echo 2 refers to its frames, and another workstation finds it on echo 2, not echo 1."""
    from annotator.datastore.remote import DicomwebDatastore
    from annotator.datastore.series_cache import SeriesCache
    from annotator.io import read_volume
    from annotator.io.seg import referenced_frames
    from multiframe import echoes_in_one_file

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = echoes_in_one_file(STUDY / "11_HCropVolume", tmp_path / "enhanced" / "enhanced.dcm")
    series = read_volume(STUDY / "11_HCropVolume")
    with LocalOrthanc(tmp_path / "server") as server:
        server.upload([path])
        store = DicomwebDatastore(_client(server))
        [record] = store.records()
        te10 = store.open_image(record.id)
        assert [r.name for r in store.records()] == ["MR HippoCrop (enhanced conversion) (TE 10, 40 slices)",
                                                     "MR HippoCrop (enhanced conversion) (TE 25, 40 slices)"]
        te25 = store.open_image(record.id + "#2")
        np.testing.assert_array_equal(te25.array, series.array)
        np.testing.assert_array_equal(te10.array, series.array * 2 + 5)
        assert [v.name for v in store.companions(record.id, te10)] == [te25.name]
        label = np.zeros(te25.shape, np.uint8)
        label[10:30, 15:35, 10:25] = 1
        store.accept(record.id + "#2", label, te25, names={1: "hippocampus"})
        [seg_series] = _client(server).series(modality="SEG", images_only=False)
        [seg] = _client(server).labels_of(seg_series.study_uid, record.id)
        assert {frame for _, frame in referenced_frames(seg)} <= set(te25.source.frames)
        other = DicomwebDatastore(_client(server), cache=SeriesCache(_client(server), root=tmp_path / "other"))
        np.testing.assert_array_equal(other.label(record.id + "#2", other.open_image(record.id + "#2")), label)
        assert other.label(record.id, other.open_image(record.id)) is None


def test_a_structure_set_on_the_server_is_the_label_of_the_series_it_outlines(tmp_path, monkeypatch):
    """An RTSTRUCT made elsewhere (a planning system) beside the series on the server: the
    series opens with its outlines filled as its label, named as its structures."""
    from annotator.datastore import Status
    from annotator.datastore.remote import DicomwebDatastore
    from annotator.datastore.series_cache import SeriesCache
    from annotator.io import read_volume
    from rtstruct import rtstruct_of

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    crop = STUDY / "11_HCropVolume"
    volume = read_volume(crop)
    z, y, x = np.indices(volume.shape)
    organ = (z - 20) ** 2 + (y - 25) ** 2 + (x - 17) ** 2 <= 49
    path = rtstruct_of(crop, {4: ("Hippocampus", organ)}, tmp_path / "rs.dcm")
    with LocalOrthanc(tmp_path / "server") as server:
        server.upload([*sorted(crop.iterdir()), path])
        store = DicomwebDatastore(_client(server))
        [record] = store.records()  # the structure set is no image to annotate
        assert record.status == Status.LABELED and record.info["labelled_on_server"]  # before it is opened
        image = store.open_image(record.id)
        label = store.label(record.id, image)
        np.testing.assert_array_equal(label, organ.astype(np.uint8) * 4)
        assert store.record(record.id).status == Status.LABELED
        assert store.label_names() == {"hippocampus": 4}
    # a damaged one (contours that name no structure) is said, and the series opens unlabelled
    import pydicom

    broken = pydicom.dcmread(path)
    del broken.ROIContourSequence[0].ReferencedROINumber
    broken.SOPInstanceUID = broken.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    broken.save_as(tmp_path / "broken.dcm")
    with LocalOrthanc(tmp_path / "other-server") as server:
        server.upload([*sorted(crop.iterdir()), tmp_path / "broken.dcm"])
        store = DicomwebDatastore(_client(server), cache=SeriesCache(_client(server), root=tmp_path / "other"))
        [record] = store.records()
        image = store.open_image(record.id)
        assert store.label(record.id, image) is None
        assert any("RTSTRUCT" in w and "not used: the structure set" in w and "is damaged" in w for w in image.warnings)
        assert store.record(record.id).status == Status.UNLABELED  # the label the listing saw cannot be used
        assert store.reloaded().record(record.id).status == Status.UNLABELED  # nor when listed again
        # a label of it sent since (a person drew it) counts again
        again = DicomwebDatastore(_client(server), cache=SeriesCache(_client(server), root=tmp_path / "again"))
        drawn = np.zeros(image.shape, np.uint8)
        drawn[18:22, 20:30, 12:22] = 1
        again.accept(record.id, drawn, again.open_image(record.id), names={1: "hippocampus"})
        relisted = store.reloaded().record(record.id)
        assert relisted.status == Status.LABELED and relisted.info["labelled_on_server"]


def test_labels_sent_from_another_workstation_are_training_data_here(tmp_path, monkeypatch):
    """Series labelled from another workstation were labeled in the worklist but no
    training data here until each was opened: training, export and the benchmarks took the
    labels kept on this workstation only. They take the server's labels now (fetched as
    they are read, and kept), and leave out one that cannot be used for its series."""
    import pydicom

    from annotator.datastore import Status
    from annotator.datastore.cases import labelled_cases
    from annotator.datastore.factory import open_store
    from annotator.datastore.remote import DicomwebDatastore
    from annotator.datastore.series_cache import SeriesCache
    from annotator.io import read_volume
    from annotator.training.config import TrainConfig
    from annotator.training.data import gather, read_case
    from annotator.training.planner import plan
    from rtstruct import rtstruct_of

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    crop, others = STUDY / "11_HCropVolume", [STUDY / "11-T1post-18670", STUDY / "36468-FLAIRreg-58706"]
    z, y, x = np.indices(read_volume(crop).shape)
    organ = (z - 20) ** 2 + (y - 25) ** 2 + (x - 17) ** 2 <= 49
    broken = pydicom.dcmread(rtstruct_of(crop, {1: ("Hippocampus", organ)}, tmp_path / "rs.dcm"))
    del broken.ROIContourSequence[0].ReferencedROINumber  # contours that name no structure: not usable
    broken.save_as(tmp_path / "broken.dcm")
    with LocalOrthanc(tmp_path / "server") as server:
        server.upload([p for folder in [crop, *others] for p in sorted(folder.iterdir())] + [tmp_path / "broken.dcm"])
        elsewhere = DicomwebDatastore(_client(server), SeriesCache(_client(server), tmp_path / "elsewhere"))
        labels = {}
        for record in elsewhere.records():
            if "HippoCrop" not in record.name:
                volume = elsewhere.open_image(record.id)
                labels[record.id] = np.zeros(volume.shape, np.uint8)
                labels[record.id][5:15, 60:90, 60:90] = 1
                elsewhere.accept(record.id, labels[record.id], volume, names={1: "lesion"})
        monkeypatch.setenv("ANNOTATOR_DICOMWEB_PASSWORD", server.password)
        url = server.url.replace("http://", f"http://{server.user}@")
        here = open_store(url)
        assert len(here.training_ids()) == 3 and not any("final" in r.versions for r in here.records())
        cases = gather(TrainConfig(method="deepedit", data=[url]))
        assert sorted(c.id for c in cases) == sorted(labels)  # the structure set that cannot be used: left out
        for case in cases:
            np.testing.assert_array_equal(read_case(case)[1], labels[case.id])
        records = {r.id: r for r in here.records()}
        assert sorted(i for i, r in records.items() if "final" in r.versions) == sorted(labels)  # kept here
        assert [r.status for r in records.values() if "HippoCrop" in r.name] == [Status.UNLABELED]
        assert sorted(here.training_ids()) == sorted(labels)
        assert sorted(i for i, _, _ in labelled_cases(url)) == sorted(labels)
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "third"))  # a third workstation plans a run
        assert plan([url]).images == 3  # as listed; its sample reads the labels, the unusable one left out


class _RefusingDeflated:
    """A DICOMweb server that does not take the Deflated transfer syntax: a proxy before an
    Orthanc that answers a STOW-RS of a deflated file 409 (as PS3.18 has a server refuse a
    transfer syntax it does not support) and passes everything else on."""

    def __init__(self, server):
        import http.server
        import threading

        import requests

        self.refused = refused = []
        target = server.url

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if b"1.2.840.10008.1.2.1.99" in body:  # the file meta, never deflated, names it
                    refused.append(self.path)
                    answer = (409, b"{}")
                else:
                    passed = requests.post(target + self.path.removeprefix("/dicom-web"), data=body, timeout=60,
                                           headers={k: self.headers[k] for k in
                                                    ("Content-Type", "Accept", "Authorization") if k in self.headers})
                    answer = (passed.status_code, passed.content)
                self.send_response(answer[0])
                self.send_header("Content-Type", "application/dicom+json")
                self.send_header("Content-Length", str(len(answer[1])))
                self.end_headers()
                self.wfile.write(answer[1])

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/dicom-web"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_seg_goes_to_the_server_deflated_and_plain_where_deflated_is_refused(tmp_path, monkeypatch):
    """An accepted label goes to the server deflated (a CT's organs: tens of MB a SEG
    uncompressed); Orthanc keeps it so, and gives it uncompressed to a viewer that does not
    ask for it as stored. A server that refuses the Deflated transfer syntax gets it
    uncompressed, in the same upload."""
    import requests
    from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

    from annotator.datastore.dicomweb import multipart_parts
    from annotator.io.seg import series_seg

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with LocalOrthanc(tmp_path / "server") as server:
        store, record, volume = _crop_on(server)
        label = np.zeros(volume.shape, np.uint8)
        label[10:30, 15:35, 10:25] = 1
        store.accept(record.id, label, volume, names={1: "hippocampus"})
        client = _client(server)
        [seg] = client.series(modality="SEG", images_only=False)
        [sop_uid] = client.instances(seg.study_uid, seg.series_uid)
        kept = pydicom.dcmread(io.BytesIO(client.instance_bytes(seg.study_uid, seg.series_uid, sop_uid)))
        assert kept.file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian  # on the old code: plain
        viewer = requests.get(f"{server.url}/studies/{seg.study_uid}/series/{seg.series_uid}/instances/{sop_uid}",
                              auth=(server.user, server.password), timeout=60,
                              headers={"Accept": 'multipart/related; type="application/dicom"'})
        [given] = multipart_parts([viewer.content], viewer.headers["Content-Type"])
        assert pydicom.dcmread(io.BytesIO(given)).file_meta.TransferSyntaxUID == ExplicitVRLittleEndian

        proxy = _RefusingDeflated(server)
        try:
            sop_uid, data = series_seg(label, volume, {1: "hippocampus"}, deflated=True)
            DicomwebServer(proxy.url, Credentials(server.user, server.password)).store(data, sop_uid)
            assert len(proxy.refused) == 1
            study, series = client.find_instance(sop_uid)
            kept = pydicom.dcmread(io.BytesIO(client.instance_bytes(study, series, sop_uid)))
            assert kept.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        finally:
            proxy.close()


def test_a_server_killed_mid_upload_gets_the_label_exactly_once(tmp_path, monkeypatch):
    """The server dies while it receives the SEG (a Lua hook ends it when the upload has
    arrived, before it stores or answers): the accept waits in the queue, across a restart
    of the app; once the server is back, the label is there exactly once."""
    from annotator.datastore import Status
    from annotator.datastore.orthanc import free_port
    from annotator.datastore.remote import DicomwebDatastore

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    killer = tmp_path / "die_on_seg.lua"
    killer.write_text('function ReceivedInstanceFilter(dicom, origin, info)\n'
                      '  if dicom.Modality == "SEG" then os.exit(3) end\n  return true\nend\n')
    port, password = free_port(), "pw-7654321"
    dying = LocalOrthanc(tmp_path / "server", port=port, password=password, lua_scripts=[killer]).start()
    try:
        store, record, volume = _crop_on(dying)
        label = np.zeros(volume.shape, np.uint8)
        label[10:30, 15:35, 10:25] = 1
        store.accept(record.id, label, volume, names={1: "hippocampus"})
        dying.process.wait(10)
        assert dying.process.returncode != 0  # it did die mid-upload
        assert store.record(record.id).status == Status.UPLOAD_FAILED
    finally:
        dying.stop()
    queue = store.uploads.root / "queue.json"  # and its queue file damaged meanwhile
    queue.write_text(queue.read_text()[:-5])
    back = LocalOrthanc(tmp_path / "server", port=port, password=password).start()
    try:
        again = DicomwebDatastore(_client(back))  # the app restarted
        [notice] = again.notices()
        assert "queue of labels to send was damaged" in notice and "queue.json.damaged-" in notice
        assert again.record(record.id).status == Status.UPLOAD_FAILED  # rebuilt: still waiting
        assert again.send_pending(force=True) == (1, 0)
        segs = list(_client(back).series(modality="SEG", images_only=False))
        assert len(segs) == 1 and segs[0].instances == 1
        assert again.record(record.id).status == Status.LABELED
    finally:
        back.stop()


def test_status_of_a_server(orthanc, tmp_path):
    env = {**os.environ, "ANNOTATOR_DICOMWEB_PASSWORD": orthanc.password, "XDG_CACHE_HOME": str(tmp_path)}
    url = orthanc.url.replace("http://", f"http://{orthanc.user}@")
    proc = subprocess.run([sys.executable, "-m", "annotator", "status", url, "--json"], capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    records = json.loads(proc.stdout)
    assert len(records) == MANY + 3 and all(r["status"] == "unlabeled" for r in records)
    assert orthanc.password not in proc.stdout + proc.stderr


def test_bench_dicomweb_quick(tmp_path):
    out = tmp_path / "b.json"
    proc = subprocess.run([sys.executable, "-m", "annotator", "bench", "dicomweb", "--quick", "--slices", "8",
                           "--series", "12", "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    found = {r["name"]: r["value"] for r in report["results"]}
    for name in ("cold_open_s", "raw_download_s", "cold_over_raw", "cached_open_s", "first_page_s",
                 "download_peak_mb", "worklist_refresh_s"):
        assert name in found
    assert found["raw_download_s"] > 0 and found["cached_open_s"] > 0
    assert found["accept_s"] > 0 and 0 < found["seg_sent_mb"] * 5 < found["seg_plain_mb"]  # sent deflated
    assert report["params"]["instances"] == 8 and report["params"]["server_series"] == 13
    assert report["params"]["worklist_rows"] == 13


def test_a_series_of_two_echoes_on_the_server_is_two_images_and_each_seg_refers_to_its_own(
        tmp_path, monkeypatch, two_echoes_mr):
    from annotator.datastore.remote import DicomwebDatastore
    from annotator.datastore.series_cache import SeriesCache
    from annotator.io import read_volume

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with LocalOrthanc(tmp_path / "server") as server:
        server.upload(sorted(two_echoes_mr.iterdir()))
        store = DicomwebDatastore(_client(server))
        [record] = store.records()
        assert record.name == "MR HippoCrop (80 images)"
        volume = store.open_image(record.id)
        echo1 = read_volume(two_echoes_mr)
        assert volume.name == "HippoCrop (echo 1)"
        np.testing.assert_array_equal(volume.array, echo1.array)
        label = np.zeros(volume.shape, np.uint8)
        label[10:30, 15:35, 10:25] = 1
        store.accept(record.id, label, volume, names={1: "hippocampus"})
        [seg_series] = _client(server).series(modality="SEG", images_only=False)
        [seg] = _client(server).labels_of(seg_series.study_uid, record.id)
        referenced = {str(i.ReferencedSOPInstanceUID) for i in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
        assert referenced == set(echo1.source.sop_uids)  # echo 1's 40 instances, not echo 2's
        other = DicomwebDatastore(_client(server), cache=SeriesCache(_client(server), root=tmp_path / "other"))
        np.testing.assert_array_equal(other.label(record.id, other.open_image(record.id)), label)
        # once opened, the second echo is an image of its own
        assert [(r.id, r.name) for r in store.records()] == [
            (record.id, "MR HippoCrop (echo 1, 40 slices)"), (record.id + "#2", "MR HippoCrop (echo 2, 40 slices)")]
        echo2 = store.open_image(record.id + "#2")
        assert echo2.name == "HippoCrop (echo 2)"
        np.testing.assert_array_equal(echo2.array, echo1.array * 2 + 5)
        # each opens with the other beneath it, from the cache
        [beside] = store.companions(record.id, volume)
        assert beside.name == "HippoCrop (echo 2)" and beside.source.sop_uids == echo2.source.sop_uids
        assert [v.name for v in store.companions(record.id + "#2", echo2)] == ["HippoCrop (echo 1)"]
        assert store.label(record.id + "#2", echo2) is None  # echo 1's SEG is not echo 2's label
        second = np.zeros(echo2.shape, np.uint8)
        second[5:15, 5:20, 5:15] = 2
        store.accept(record.id + "#2", second, echo2, names={2: "posterior"})
        assert {r.id: r.status.value for r in store.records()} == {record.id: "labeled", record.id + "#2": "labeled"}
        segs = _client(server).labels_of(seg_series.study_uid, record.id)
        assert len(segs) == 2
        assert {str(i.ReferencedSOPInstanceUID) for i in segs[-1].ReferencedSeriesSequence[0].ReferencedInstanceSequence
                } == set(echo2.source.sop_uids)
        assert not set(echo2.source.sop_uids) & set(echo1.source.sop_uids)
        # another workstation opens echo 2 straight away and gets its own label, and echo 1 keeps its
        third = DicomwebDatastore(_client(server), cache=SeriesCache(_client(server), root=tmp_path / "third"))
        np.testing.assert_array_equal(third.label(record.id + "#2", third.open_image(record.id + "#2")), second)
        np.testing.assert_array_equal(third.label(record.id, third.open_image(record.id)), label)
        with pytest.raises(DatastoreError, match="no image series"):
            third.open_image(record.id + "#3")
        with pytest.raises(DatastoreError, match="no image series"):
            third.open_image(record.id + "#1")
        # both echoes' labels export for training elsewhere, each on its echo
        from annotator.datastore.export import export_nnunet

        described = export_nnunet(third, tmp_path / "export")
        assert described["annotator"]["cases"] == {record.id: record.id, f"{record.id}_2": record.id + "#2"}
        exported = read_volume(tmp_path / "export" / "imagesTr" / f"{record.id}_2_0000.nii.gz")
        np.testing.assert_array_equal(exported.array, echo2.array)
        assert described["labels"] == {"background": 0, "hippocampus": 1, "posterior": 2}


def test_the_upload_queue_keeps_in_step_with_its_files_after_a_crash(tmp_path):
    """A SEG written but not listed (a crash between the two writes of an accept) is sent,
    asking the server first; an entry whose SEG is gone (sent, then a crash before the
    queue was written) leaves instead of failing for ever."""
    from annotator.datastore.uploads import UploadQueue

    queue = UploadQueue(tmp_path / "uploads")
    queue.add("1.2.3", "9.9.1", b"first")
    queue.add("1.2.4", "9.9.2", b"second")
    (tmp_path / "uploads" / "9.9.3.dcm").write_bytes(b"not listed")
    (tmp_path / "uploads" / "9.9.1.dcm").unlink()
    assert sorted(e["sop_uid"] for e in queue.entries()) == ["9.9.2", "9.9.3"]
    sent, asked = [], []
    assert queue.flush(lambda data, uid: sent.append((uid, data)), lambda uid: asked.append(uid) or False) == (2, 0)
    assert sorted(sent) == [("9.9.2", b"second"), ("9.9.3", b"not listed")] and asked == ["9.9.3"]
    assert queue.entries() == [] and not list((tmp_path / "uploads").glob("*.dcm"))


def test_a_server_out_of_reach_ends_the_round_and_one_object_refused_does_not(tmp_path):
    """Ten labels waiting for a server that does not answer each waited for its own
    timeout (5 s) in every round, holding the file worker that opens images; a round now
    ends at the first failure of the server, the others waiting as long. A label the
    server rejects (not the server failing) does not stop the others."""
    from annotator.datastore.uploads import UploadQueue
    from annotator.errors import ServerError

    queue = UploadQueue(tmp_path / "uploads")
    for i in range(10):
        queue.add(f"1.2.{i}", f"9.9.{i}", b"seg")
    tried = []

    def unreachable(data, uid):
        tried.append(uid)
        raise ServerError("http://h/dicom-web: no answer within 5 s")

    assert queue.flush(unreachable, lambda uid: False, now=1000.0) == (0, 10) and tried == ["9.9.0"]
    entries = queue.entries()
    assert [e["attempts"] for e in entries] == [1] + [0] * 9 and not any(e["refused"] for e in entries[:1])
    assert {e["next_try"] for e in entries} == {1000.0 + 5.0}  # the others wait as long as the one tried
    assert queue.flush(unreachable, lambda uid: False, now=1004.0) == (0, 10) and tried == ["9.9.0"]

    def rejects_one(data, uid):
        tried.append(uid)
        if uid == "9.9.0":
            raise DatastoreError("http://h/dicom-web: the upload of 9.9.0 was not stored (HTTP 400)")

    tried.clear()
    assert queue.flush(rejects_one, lambda uid: False, now=1010.0) == (9, 1) and len(tried) == 10


def _processes_with(text: str) -> list[int]:
    """The ids of the running processes whose command line holds ``text`` (Linux)."""
    from pathlib import Path

    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:  # gone meanwhile
                pass
    return found


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_orthanc_serve_stops_orthanc_when_killed(tmp_path, signame):
    """`annotator orthanc serve` stopped its Orthanc on Ctrl-C only: killed, or with its
    terminal closed, it left Orthanc running on its port with nobody to stop it."""
    import signal

    config = str(tmp_path / "orthanc.json")
    proc = subprocess.Popen([sys.executable, "-m", "annotator", "orthanc", "serve", "--folder", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if line.startswith("DICOMweb:"):
                break
        assert len(_processes_with(config)) == 1, proc.stderr.read() if proc.poll() is not None else ""
        proc.send_signal(getattr(signal, signame))
        assert proc.wait(30) == 0
        deadline = time.monotonic() + 15
        while _processes_with(config) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _processes_with(config) == []
    finally:
        proc.kill()
        for pid in _processes_with(config):
            os.kill(pid, signal.SIGKILL)


def test_the_robots_score_a_servers_accepted_labels(tmp_path):
    """`bench robot --data URL`: the robots run on the labels accepted on a DICOMweb
    server (the URL was taken for a folder path and its "//" folded: "no such folder")."""
    from annotator.io.write import write_label
    from annotator.io import read_volume

    with LocalOrthanc(tmp_path / "server") as server:
        server.upload(sorted((STUDY / "11_HCropVolume").iterdir()))
        env = {**os.environ, "ANNOTATOR_DICOMWEB_PASSWORD": server.password, "XDG_CACHE_HOME": str(tmp_path / "c")}
        url = server.url.replace("http://", f"http://{server.user}@")

        def annotator(*args):
            return subprocess.run([sys.executable, "-m", "annotator", *args], capture_output=True, text=True,
                                  timeout=600, env=env)

        [record] = json.loads(annotator("status", url, "--json").stdout)
        proc = annotator("bench", "robot", "--method", "graphcut", "--quick", "--data", url)
        assert proc.returncode == 2 and f"no labelled images in {url}" in proc.stderr, proc.stderr
        volume = read_volume(STUDY / "11_HCropVolume")
        label = np.zeros(volume.shape, np.uint8)
        label[12:28, 18:34, 10:24] = 1
        write_label(tmp_path / "label.nii.gz", label, volume)
        assert annotator("accept", url, record["id"], str(tmp_path / "label.nii.gz")).returncode == 0
        for method in ("graphcut", "deepedit"):
            out = tmp_path / f"{method}.json"
            extra = ["--method", "graphcut"] if method == "graphcut" else ["--clicks", "1"]
            proc = annotator("bench", "robot", *extra, "--quick", "--data", url, "--json", str(out))
            assert proc.returncode == 0, proc.stderr[-2000:]
            report = json.loads(out.read_text())
            assert report["params"]["data"] == url and server.password not in out.read_text()
            assert [r["case"] for r in report["cases"]] == [record["id"]]


def test_a_user_named_in_the_url_signs_in_every_command_and_a_refusal_after_is_said(tmp_path):
    """`http://user@host/dicom-web` names the user for `dicomweb list` and `login` as it
    does for `status` (they took no user from the URL and were refused: 401), an e-mail
    address as user and a password of URL characters included. Refused later, `status`
    lists the series seen last and says why (it said nothing)."""
    user, password = "ann.smith@hospital.org", "p:a@ss%20w rd/!"
    with LocalOrthanc(tmp_path / "server", user=user, password=password) as server:
        server.upload(sorted((STUDY / "11_HCropVolume").iterdir()))
        host = server.url.removeprefix("http://")

        def annotator(secret, *args, stdin=None):
            env = {**os.environ, "ANNOTATOR_DICOMWEB_PASSWORD": secret, "XDG_CACHE_HOME": str(tmp_path / "c")}
            return subprocess.run([sys.executable, "-m", "annotator", *args], capture_output=True, text=True,
                                  timeout=120, env=env, input=stdin, start_new_session=True)  # no terminal to ask

        proc = annotator("", "dicomweb", "login", f"http://{user}@{host}", stdin="")  # nothing typed, no terminal
        assert proc.returncode == 2 and "no password given: the input ended" in proc.stderr, proc.stderr

        for url in (f"http://{user}@{host}", f"http://ann.smith%40hospital.org@{host}"):
            proc = annotator(password, "dicomweb", "list", url)
            assert proc.returncode == 0 and "HippoCrop" in proc.stdout, proc.stderr
            proc = annotator("", "dicomweb", "login", url, "--stdin", stdin=password + "\n")
            assert proc.returncode == 0 and "password checked" in proc.stdout, proc.stderr
        proc = annotator(password, "dicomweb", "list", f"http://{user}@{host}", "--user", "someone")
        assert proc.returncode == 2 and "give one" in proc.stderr
        proc = annotator(password, "status", f"http://{user}@{host}")
        assert proc.returncode == 0 and ": 1 image, 0 labeled" in proc.stdout and proc.stderr == "", proc.stderr
        proc = annotator("wrong", "status", f"http://{user}@{host}")
        assert proc.returncode == 0 and ": 1 image, 0 labeled" in proc.stdout
        assert "refused the credentials (401)" in proc.stderr and "the series seen last are listed" in proc.stderr
        assert password not in proc.stdout + proc.stderr


def test_training_on_a_servers_labels_is_handed_the_password_held_in_memory(tmp_path, monkeypatch):
    """With no keyring the app holds a server's password in its memory alone; a training
    run on that server's labels, a child process, is handed it through a pipe (it could not
    sign in: "no password"), and nothing of it is written to the run's folder."""
    import pydicom
    from pydicom.uid import generate_uid

    from annotator.datastore import secrets
    from annotator.datastore.factory import open_datastore
    from annotator.training.config import TrainConfig
    from annotator.training.runner import TrainingProcess

    import keyring.core
    from keyring.backends.fail import Keyring as NoKeyring

    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")  # the child's
    # this process may have chosen a backend before (another test's): none here now
    monkeypatch.setattr(keyring.core, "_keyring_backend", NoKeyring())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("ANNOTATOR_DICOMWEB_PASSWORD", raising=False)
    files = []
    for copy in range(3):  # three series of the crop
        series = generate_uid()
        (tmp_path / f"s{copy}").mkdir()
        for path in sorted((STUDY / "11_HCropVolume").iterdir()):
            ds = pydicom.dcmread(path)
            ds.SeriesInstanceUID = series
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            ds.save_as(tmp_path / f"s{copy}" / path.name)
            files.append(tmp_path / f"s{copy}" / path.name)
    with LocalOrthanc(tmp_path / "server", password="held-in-memory-only") as server:
        server.upload(files)
        assert secrets.remember(server.url, server.user, server.password) is False  # this process alone
        place = server.url.replace("http://", f"http://{server.user}@")
        store, _ = open_datastore(place)
        for record in store.records():
            volume = store.open_image(record.id)
            label = np.zeros(volume.shape, np.uint8)
            label[12:28, 18:34, 10:24] = 1
            store.accept(record.id, label, volume)
        config = TrainConfig(method="deepgrow2d", data=[place], name="from-server", epochs=1, max_iterations=2,
                             batch_size=2, patch=[32, 32], out=str(tmp_path / "run"), val_fraction=0.34,
                             install=False)
        job = TrainingProcess(config)
        job.start()
        assert job.wait(300) is not None, "training did not finish"
        job.poll()
        errors = [e for e in job.events if e["event"] == "error"]
        assert not errors and any(e["event"] == "done" for e in job.events), errors
        start = next(e for e in job.events if e["event"] == "start")
        assert start["train_cases"] + start["val_cases"] == 3
        written = "".join(p.read_text(errors="replace") for p in (tmp_path / "run").rglob("*") if p.is_file()
                          and p.suffix in (".json", ".jsonl", ".log", ".txt"))
        assert server.password not in written
        secrets.forget(server.url, server.user)
