"""A DICOMweb server (QIDO-RS search), as the datastore will use it.

Queries are built here rather than by dicomweb-client, which percent-encodes every value:
Orthanc 1.10 does not decode query values, so ``PatientName=Smith*`` sent through the
client matches nothing. Wildcards (``*``, ``?``) go as they are; ``^`` and spaces, which
Orthanc does not match even when sent raw, go as ``?`` (one character), and the rows are
then matched again here against the pattern as given, so the answer is exact. Pages are
fetched with ``limit``/``offset`` until a short page, or a page that starts with a row
already seen (servers that ignore ``offset``). A server that is down is known within the
timeout (no retries here); 401/403, a wrong URL or a server that is not DICOMweb get one
message naming the server. Secrets never appear in a message.
"""

from __future__ import annotations

import contextlib
import fnmatch
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import SplitResult, quote, urlsplit

import requests

from annotator.errors import CredentialsError, DatastoreError, ServerError, detail

#: Series that are not images to annotate: segmentations, reports, presentation states, ...,
#: and radiographs (computed, digital, intra-oral and panoramic X-ray: each instance a 2-D
#: picture, however many a series holds; a mammography series may be a tomosynthesis volume)
NON_IMAGE_MODALITIES = {"SEG", "SR", "PR", "KO", "RTSTRUCT", "RTPLAN", "RTDOSE", "RTRECORD", "REG", "DOC",
                        "FID", "PLAN", "RWV", "CR", "DX", "IO", "PX"}
#: the modalities of labels: segmentations, and structure sets of outlines
LABEL_MODALITIES = ("SEG", "RTSTRUCT")
#: how many label series' metadata are asked for at once
METADATA_REQUESTS = 8
_TAGS = {"StudyInstanceUID": "0020000D", "SeriesInstanceUID": "0020000E", "Modality": "00080060",
         "SeriesDescription": "0008103E", "PatientName": "00100010", "PatientID": "00100020",
         "StudyDate": "00080020", "NumberOfSeriesRelatedInstances": "00201209", "SeriesNumber": "00200011",
         "SOPInstanceUID": "00080018"}


@dataclass(frozen=True)
class Credentials:
    """How to authenticate: nothing, HTTP basic (user + password) or a bearer token."""

    user: str = ""
    password: str = ""
    token: str = ""
    ca_bundle: str = ""

    def __repr__(self) -> str:  # never print a secret
        kind = "token" if self.token else "basic" if self.user else "none"
        return f"Credentials({kind}, user={self.user!r})"


@dataclass(frozen=True)
class SeriesRow:
    study_uid: str
    series_uid: str
    modality: str
    description: str
    instances: int
    patient: str = ""
    date: str = ""


def _value(row: dict, name: str) -> str:
    values = row.get(_TAGS[name], {}).get("Value") or [""]
    value = values[0]
    if isinstance(value, dict):  # a person name
        value = value.get("Alphabetic", "")
    return str(value)


def labelled_series(ds) -> set[str]:
    """The image series a DICOM SEG (its Referenced Series) or RT Structure Set (the
    series its frame of reference names) labels."""
    from annotator.io.rtstruct import referenced_series

    refs = {str(r.get("SeriesInstanceUID", "")) for r in ds.get("ReferencedSeriesSequence") or []}
    return (refs | {referenced_series(ds)}) - {""}


def _boundary(content_type: str) -> bytes:
    found = next((p.split("=", 1)[1].strip().strip('"') for p in content_type.split(";")
                  if p.strip().lower().startswith("boundary=")), None)
    if not found:
        raise DatastoreError(f"not a multipart answer ({content_type or 'no content type'})")
    return found.encode()


def multipart_parts(chunks: Iterable[bytes], content_type: str) -> Iterator[bytes]:
    """The bodies of a multipart/related answer, each as soon as it has arrived: only one
    part (and one chunk) is held at a time."""
    delimiter = b"\r\n--" + _boundary(content_type)
    buffer = bytearray(b"\r\n")  # the first delimiter has no CRLF before it
    searched = 0
    for chunk in chunks:
        buffer += chunk
        while True:
            at = buffer.find(delimiter, searched)
            if at < 0:
                searched = max(0, len(buffer) - len(delimiter))
                break
            body = buffer.find(b"\r\n\r\n", 0, at)  # the part's headers end here
            if body >= 0:
                yield bytes(memoryview(buffer)[body + 4:at])
            del buffer[:at + len(delimiter)]
            searched = 0
            if buffer.startswith(b"--"):  # the closing delimiter
                return


def qido_value(pattern: str) -> str:
    """A query value Orthanc understands: wildcards as they are, ``^`` and spaces as ``?``,
    the rest percent-encoded."""
    return "".join(c if c in "*?" else "?" if c in "^ " else quote(c, safe="-_.~") for c in pattern)


def _matches(pattern: str, value: str, name: str) -> bool:
    if name == "StudyDate" and "-" in pattern:
        lo, _, hi = pattern.partition("-")
        return (not lo or value >= lo) and (not hi or value <= hi)
    if name == "PatientName":  # person names match without regard to case, as servers do
        return fnmatch.fnmatchcase(value.lower(), pattern.lower())
    return fnmatch.fnmatchcase(value, pattern)


def parsed_url(url: str) -> SplitResult:
    """The parts of a server's URL, or an error that says what a server's URL is."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a port that is not a number says so here
    except ValueError as exc:
        raise DatastoreError(f"{url}: not a valid URL ({detail(exc, 120)})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DatastoreError(f"{url}: not a DICOMweb server's URL (one starts with http:// or https:// and names "
                             "the host, e.g. http://host:8042/dicom-web)")
    return parts


class DicomwebServer:
    """QIDO-RS of one server."""

    def __init__(self, url: str, credentials: Credentials | None = None, timeout: float = 5.0):
        parsed_url(url)
        self.url = url.rstrip("/")
        self.credentials = credentials or Credentials()
        self.timeout = timeout
        self.session = requests.Session()
        self.session.verify = self.credentials.ca_bundle or True
        if self.credentials.token:
            self.session.headers["Authorization"] = f"Bearer {self.credentials.token}"
        elif self.credentials.user:
            self.session.auth = (self.credentials.user, self.credentials.password)

    @contextlib.contextmanager
    def _errors(self, timeout: float):
        """No answer, a refused or broken connection become one error naming the server."""
        try:
            yield
        except requests.exceptions.SSLError:
            raise ServerError(f"{self.url}: the server's TLS certificate is not trusted (give --ca-bundle)") from None
        except requests.exceptions.Timeout:
            raise ServerError(f"{self.url}: no answer within {timeout:g} s") from None
        except requests.exceptions.ConnectionError:
            raise ServerError(f"{self.url}: cannot connect (is the server running and the URL right?)") from None
        except requests.exceptions.ChunkedEncodingError:
            raise ServerError(f"{self.url}: the connection broke during the transfer") from None

    def _send(self, request: requests.PreparedRequest, timeout: float) -> requests.Response:
        """Send one request (see :meth:`_errors`)."""
        with self._errors(timeout):
            answer = self.session.send(request, timeout=timeout)
        if answer.status_code in (401, 403):
            raise CredentialsError(f"{self.url}: the server refused the credentials ({answer.status_code})")
        return answer

    def _get(self, path: str, query: list[tuple[str, str]] = (), accept: str = "application/dicom+json"):
        text = "&".join(f"{k}={v}" for k, v in query)
        request = self.session.prepare_request(requests.Request("GET", f"{self.url}/{path}",
                                                                headers={"Accept": accept}))
        request.url = f"{self.url}/{path}" + (f"?{text}" if text else "")  # as built: see qido_value
        answer = self._send(request, self.timeout)
        if not answer.ok:
            root = (f": is {self.url} its DICOMweb root? (an Orthanc's: {self.url}/dicom-web)"
                    if answer.status_code in (400, 404) and "/" not in path else "")  # a query of the root itself
            raise DatastoreError(f"{self.url}: does not answer as a DICOMweb server (HTTP {answer.status_code} "
                                 f"for {path}){root}")
        return answer

    def _get_json(self, path: str, query: list[tuple[str, str]]) -> list[dict]:
        answer = self._get(path, query)
        if answer.status_code == 204:
            return []
        try:
            rows = answer.json()
        except ValueError:
            raise DatastoreError(f"{self.url}: does not answer as a DICOMweb server (not DICOM JSON)") from None
        if not isinstance(rows, list):
            raise DatastoreError(f"{self.url}: does not answer as a DICOMweb server (not a list of results)")
        return rows

    def find_series(self, series_uid: str) -> SeriesRow:
        """The series with this UID (any modality)."""
        rows = self._get_json("series", [("SeriesInstanceUID", qido_value(series_uid))])
        found = [r for r in rows if _value(r, "SeriesInstanceUID") == series_uid]
        if not found:
            raise DatastoreError(f"{self.url}: no series {series_uid} (deleted from the server, or never there)")
        row = found[0]
        return SeriesRow(_value(row, "StudyInstanceUID"), series_uid, _value(row, "Modality"),
                         _value(row, "SeriesDescription"), int(_value(row, "NumberOfSeriesRelatedInstances") or 0))

    def instances(self, study_uid: str, series_uid: str, page: int = 1000) -> list[str]:
        """SOP Instance UIDs of a series (QIDO-RS, paged)."""
        uids: list[str] = []
        while True:
            rows = self._get_json(f"studies/{study_uid}/series/{series_uid}/instances",
                                  [("limit", str(page)), ("offset", str(len(uids)))])
            fresh = [u for u in (_value(r, "SOPInstanceUID") for r in rows) if u and u not in uids]
            uids += fresh
            if len(rows) < page or not fresh:
                return uids

    def instance_bytes(self, study_uid: str, series_uid: str, sop_uid: str) -> bytes:
        """One instance as a DICOM file (WADO-RS), in the transfer syntax the server stores."""
        answer = self._get(f"studies/{study_uid}/series/{series_uid}/instances/{sop_uid}",
                           accept='multipart/related; type="application/dicom"; transfer-syntax=*')
        parts = list(multipart_parts([answer.content], answer.headers.get("Content-Type", "")))
        if len(parts) != 1:
            raise DatastoreError(f"{self.url}: instance {sop_uid} came as {len(parts)} parts, not one")
        return parts[0]

    def iter_series(self, study_uid: str, series_uid: str, chunk: int = 2**20) -> Iterator[bytes]:
        """The instances of a series as DICOM files, streamed: one WADO-RS request, each
        instance handed on as soon as it has arrived, so memory does not grow with the
        series. (dicomweb-client's ``iter_series`` streams too, but parses every instance
        into a dataset; writing it back to a file costs five times the transfer.) No
        retries: the caller decides (the cache resumes what is missing)."""
        read_timeout = max(self.timeout, 60.0)
        path = f"studies/{study_uid}/series/{series_uid}"
        request = self.session.prepare_request(requests.Request(
            "GET", f"{self.url}/{path}",
            headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}))
        with self._errors(read_timeout):
            answer = self.session.send(request, timeout=(self.timeout, read_timeout), stream=True)
            with answer:
                if answer.status_code in (401, 403):
                    raise CredentialsError(f"{self.url}: the server refused the credentials ({answer.status_code})")
                if not answer.ok:
                    raise DatastoreError(f"{self.url}: does not answer as a DICOMweb server (HTTP "
                                         f"{answer.status_code} for {path})")
                yield from multipart_parts(answer.iter_content(chunk), answer.headers.get("Content-Type", ""))

    def labels_of(self, study_uid: str, series_uid: str) -> list:
        """The DICOM SEGs and RT Structure Sets in the study that label this series, as
        pydicom datasets, oldest first (by content or structure set date and time)."""
        import io

        import pydicom

        found = []
        for modality in LABEL_MODALITIES:
            for row in self._get_json(f"studies/{study_uid}/series", [("Modality", modality)]):
                label_series = _value(row, "SeriesInstanceUID")
                if _value(row, "Modality") != modality:
                    continue
                for sop_uid in self.instances(study_uid, label_series):
                    ds = pydicom.dcmread(io.BytesIO(self.instance_bytes(study_uid, label_series, sop_uid)))
                    if series_uid in labelled_series(ds):
                        found.append(ds)

        def made(ds) -> tuple[str, str]:
            return (str(ds.get("ContentDate", ds.get("StructureSetDate", ""))),
                    str(ds.get("ContentTime", ds.get("StructureSetTime", ""))))

        return sorted(found, key=made)

    def labels_on_server(self, known: dict[str, list[str]], studies: set[str], progress=None) -> None:
        """Bring ``known`` (label series UID -> the image series UIDs it refers to, as
        remembered) up to date with the server's SEGs and RT Structure Sets in ``studies``,
        made here or elsewhere: a label series no longer listed leaves it; of a new one the
        metadata is asked for (WADO-RS, no pixel data; several at once: a server with
        thousands of labels answers each in tens of milliseconds), each added as it comes,
        so that what was answered before a server was lost stays. One whose metadata the
        server does not give refers to none. ``progress(text, fraction)`` hears the count."""
        from concurrent.futures import ThreadPoolExecutor

        listed = {row.series_uid: row for modality in LABEL_MODALITIES
                  for row in self.series(modality=modality, images_only=False)
                  if row.modality.upper() == modality and row.study_uid in studies}
        for gone in set(known) - set(listed):
            del known[gone]
        new = [row for uid, row in listed.items() if uid not in known]
        pool = ThreadPoolExecutor(METADATA_REQUESTS)
        try:
            for done, (row, series) in enumerate(zip(new, pool.map(self._labelled_by, new)), 1):
                known[row.series_uid] = series
                if progress is not None:
                    progress(f"reading which series the server's labels refer to ({done:,} of {len(new):,})",
                             done / len(new))
        finally:
            pool.shutdown(cancel_futures=True)  # a lost server: the requests not yet sent are not

    def _labelled_by(self, row: SeriesRow) -> list[str]:
        """The image series the label series ``row`` refers to, from its metadata (none when
        the server has no metadata for it)."""
        import pydicom

        wanted = ("00081115", "30060010")  # its Referenced Series, a structure set's frames of reference
        series: set[str] = set()
        try:
            metadata = self._get_json(f"studies/{row.study_uid}/series/{row.series_uid}/metadata", [])
        except ServerError:
            raise
        except DatastoreError:  # no metadata for it (HTTP 404, not DICOM JSON): it refers to none
            return []
        for item in metadata:
            if isinstance(item, dict):
                try:
                    series |= labelled_series(pydicom.Dataset.from_json({k: v for k, v in item.items() if k in wanted}))
                except (ValueError, TypeError, KeyError, AttributeError):  # a malformed answer refers to nothing
                    continue
        return sorted(series)

    def find_instance(self, sop_uid: str) -> tuple[str, str]:
        """(study, series) UIDs of the instance with this SOP Instance UID."""
        rows = self._get_json("instances", [("SOPInstanceUID", qido_value(sop_uid))])
        found = [r for r in rows if _value(r, "SOPInstanceUID") == sop_uid]
        if not found:
            raise DatastoreError(f"{self.url}: no instance {sop_uid}")
        return _value(found[0], "StudyInstanceUID"), _value(found[0], "SeriesInstanceUID")

    def store(self, data: bytes, sop_uid: str) -> None:
        """STOW-RS one DICOM file. Success means the server lists ``sop_uid`` among the
        stored instances; a 202, a failed-SOP list or any other answer is an error. A
        deflated file that the server does not store is sent once more uncompressed (a
        server that does not take that transfer syntax)."""
        from annotator.io.seg import inflated

        refused = self._stow(data, sop_uid)
        plain = inflated(data) if refused else None
        if plain is not None:
            refused = self._stow(plain, sop_uid)
        if refused:
            raise DatastoreError(f"{self.url}: the upload of {sop_uid} was not stored ({refused})")

    def _stow(self, data: bytes, sop_uid: str) -> str:
        """One STOW-RS request; what the server answered when it did not store ``sop_uid``,
        empty when it did."""
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + data
                + f"\r\n--{boundary}--\r\n".encode())
        headers = {"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
                   "Accept": "application/dicom+json"}
        request = self.session.prepare_request(requests.Request("POST", f"{self.url}/studies", data=body,
                                                                headers=headers))
        answer = self._send(request, max(self.timeout, 60.0))
        try:
            result = answer.json()
        except ValueError:
            result = {}
        stored = {str(item.get("00081155", {}).get("Value", [""])[0])
                  for item in result.get("00081199", {}).get("Value", [])} if isinstance(result, dict) else set()
        failed = result.get("00081198", {}).get("Value") if isinstance(result, dict) else None
        if answer.status_code != 200 or failed or sop_uid not in stored:
            return f"HTTP {answer.status_code}{', failed SOP list' if failed else ''}"
        return ""

    def series(self, modality: str = "", patient: str = "", description: str = "", date: str = "",
               page: int = 200, images_only: bool = True) -> Iterator[SeriesRow]:
        """Series matching the filters (wildcards allowed), page by page."""
        filters = {"Modality": modality, "PatientName": patient, "SeriesDescription": description,
                   "StudyDate": date}
        filters = {k: v for k, v in filters.items() if v}
        fields = [("includefield", tag) for tag in ("00100010", "00080020", "0008103E", "00201209")]
        query = [(k, qido_value(v)) for k, v in filters.items()] + fields
        offset, seen = 0, set()
        while True:
            rows = self._get_json("series", query + [("limit", str(page)), ("offset", str(offset))])
            fresh = []
            for row in rows:
                uid = _value(row, "SeriesInstanceUID")
                if uid in seen:
                    continue
                seen.add(uid)
                fresh.append(row)
            for row in fresh:
                found = SeriesRow(_value(row, "StudyInstanceUID"), _value(row, "SeriesInstanceUID"),
                                  _value(row, "Modality"), _value(row, "SeriesDescription"),
                                  int(_value(row, "NumberOfSeriesRelatedInstances") or 0),
                                  _value(row, "PatientName"), _value(row, "StudyDate"))
                if images_only and found.modality.upper() in NON_IMAGE_MODALITIES:
                    continue
                values = {"Modality": found.modality, "PatientName": found.patient,
                          "SeriesDescription": found.description, "StudyDate": found.date}
                if all(_matches(pattern, values[name], name) for name, pattern in filters.items()):
                    yield found
            if len(rows) < page or not fresh:  # the last page, or a server that ignores offset
                return
            offset += len(rows)
