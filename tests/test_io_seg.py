"""Labels as DICOM SEG and back, on the source series' grid (highdicom)."""

from __future__ import annotations

import io
import json
import random
import shutil
import warnings

import numpy as np
import pydicom
import pytest

from annotator.errors import InputError
from annotator.io import read_label, read_volume
from annotator.io.seg import _TYPE2_COPIED, label_to_seg, seg_to_label, series_seg, sorted_sources, write_seg
from annotator.io.seg_codes import segment_codes
from dciodvfy import dicom_errors
from paths import DATA

CT = DATA / "dcmqi_ct3slice_seg"


@pytest.fixture(scope="module")
def ct():
    volume = read_volume(CT / "ct-3slice")
    sources = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted((CT / "ct-3slice").iterdir())]
    return volume, sources


def test_label_to_seg_and_back_is_voxel_identical_and_valid(ct, tmp_path):
    volume, sources = ct
    label = read_label(CT / "liver_spine_seg.nrrd", volume)
    shuffled = sources[:]
    random.Random(0).shuffle(shuffled)  # highdicom does not sort: we do
    seg = label_to_seg(label, shuffled, {1: "liver", 2: "vertebra"}, algorithm="deepedit-hippocampus-mr",
                       creator="Radiologist^A")
    path = write_seg(tmp_path / "seg.dcm", seg)
    back, names = seg_to_label(pydicom.dcmread(path), volume)
    np.testing.assert_array_equal(back, label)
    assert names == {1: "liver", 2: "vertebra"}
    ds = pydicom.dcmread(path)
    assert ds.SegmentationType == "BINARY" and ds.ContentCreatorName == "Radiologist^A"
    liver, spine = ds.SegmentSequence
    assert liver.SegmentedPropertyTypeCodeSequence[0].CodeValue == "10200004"  # SNOMED CT liver
    assert spine.SegmentedPropertyTypeCodeSequence[0].CodeValue == "51282000"  # vertebra
    assert liver.SegmentAlgorithmType == "SEMIAUTOMATIC" and liver.SegmentAlgorithmName == "deepedit-hippocampus-mr"
    assert dicom_errors(path) == []


def test_a_series_of_files_without_an_extension_gets_its_seg(tmp_path):
    """PACS exports often name files IM0001 or by UID, without ``.dcm``."""
    series = tmp_path / "series"
    series.mkdir()
    for path in sorted((DATA / "udacity_study3_mr_dicom" / "11_HCropVolume").iterdir()):
        shutil.copy(path, series / f"IM{path.stem:0>4}")
    (series / "README").write_text("not DICOM")
    volume = read_volume(series)
    label = np.zeros(volume.shape, np.uint8)
    label[10:20, 10:30, 10:20] = 1
    _, data = series_seg(label, volume, {1: "hippocampus"})
    seg = pydicom.dcmread(io.BytesIO(data))
    referenced = {str(i.ReferencedSOPInstanceUID) for i in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced == set(volume.source.sop_uids) and len(referenced) == 40
    np.testing.assert_array_equal(seg_to_label(seg, volume)[0], label)


def test_a_label_goes_to_seg_on_the_frames_of_a_multi_frame_image_and_back(multiframe_mr, tmp_path):
    volume = read_volume(multiframe_mr.parent)
    label = np.zeros(volume.shape, np.uint8)
    label[5:12, 10:30, 5:20] = 1
    label[20:23, 30:40, 10:25] = 2
    _, data = series_seg(label, volume, {1: "hippocampus", 2: "tumor"})
    (tmp_path / "seg.dcm").write_bytes(data)
    assert dicom_errors(tmp_path / "seg.dcm") == []
    seg = pydicom.dcmread(tmp_path / "seg.dcm")
    back, names = seg_to_label(seg, volume)
    np.testing.assert_array_equal(back, label)
    assert names == {1: "hippocampus", 2: "tumor"}
    # each SEG frame lies where the source frame it refers to lies
    header = pydicom.dcmread(multiframe_mr, stop_before_pixels=True)
    for group in seg.PerFrameFunctionalGroupsSequence:
        frame = int(group.DerivationImageSequence[0].SourceImageSequence[0].ReferencedFrameNumber)
        source = header.PerFrameFunctionalGroupsSequence[frame - 1].PlanePositionSequence[0].ImagePositionPatient
        assert [float(v) for v in group.PlanePositionSequence[0].ImagePositionPatient] == pytest.approx(
            [float(v) for v in source], abs=1e-3)
    assert seg.NumberOfFrames == 7 + 3  # empty frames left out


def test_a_server_seg_opens_as_the_label_it_holds(ct):
    volume, _ = ct
    label, names = seg_to_label(pydicom.dcmread(CT / "liver.dcm"), volume)
    np.testing.assert_array_equal(label, read_label(CT / "liver_seg.nrrd", volume))
    assert int(label.sum()) == 107098 and names == {1: "Liver"}


def test_unknown_names_get_generic_codes_and_a_person_s_work_is_manual(ct, tmp_path):
    volume, sources = ct
    label = np.zeros(volume.shape, np.uint8)
    label[1, 200:260, 200:260] = 1  # one slice only: the empty ones are left out
    with pytest.warns(UserWarning, match="'region 7' has no SNOMED code"):
        seg = label_to_seg(label, sources, {1: "region 7"})
    path = write_seg(tmp_path / "seg.dcm", seg)
    ds = pydicom.dcmread(path)
    item = ds.SegmentSequence[0]
    assert item.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "91723000"  # anatomical structure
    assert item.SegmentedPropertyTypeCodeSequence[0].CodeValue == "85756007"  # tissue
    assert item.SegmentAlgorithmType == "MANUAL" and int(ds.NumberOfFrames) == 1
    assert dicom_errors(path) == []
    np.testing.assert_array_equal(seg_to_label(ds, volume)[0], label)


def test_segments_are_coded_from_their_names_as_people_write_them(ct, tmp_path):
    """The type DICOM's lists give a name, however it is written, a side as a modifier of
    a paired organ's type, and a lesion's category for a lesion named with its organ."""
    volume, sources = ct
    names = {1: "kidney_left", 2: "vertebrae_L1", 3: "liver tumour", 4: "Left atrium", 5: "lung_upper_lobe_right",
             6: "urinary_bladder"}
    label = np.zeros(volume.shape, np.uint8)
    for value in names:
        label[1, 40 * value:40 * value + 30, 200:260] = value
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every name here has its code
        seg = label_to_seg(label, sources, names)
    path = write_seg(tmp_path / "seg.dcm", seg)
    ds = pydicom.dcmread(path)
    coded = {}
    for item in ds.SegmentSequence:
        kind = item.SegmentedPropertyTypeCodeSequence[0]
        sides = [m.CodeMeaning for m in kind.get("SegmentedPropertyTypeModifierCodeSequence", [])]
        coded[str(item.SegmentLabel)] = (item.SegmentedPropertyCategoryCodeSequence[0].CodeMeaning,
                                         kind.CodeValue, sides)
    assert coded == {
        "kidney_left": ("Anatomical Structure", "64033007", ["Left"]),  # kidney
        "vertebrae_L1": ("Anatomical Structure", "66794005", []),  # first lumbar vertebra
        "liver tumour": ("Morphologically Abnormal Structure", "108369006", []),  # neoplasm
        "Left atrium": ("Anatomical Structure", "82471001", []),  # the side is in the name's code
        "lung_upper_lobe_right": ("Anatomical Structure", "45653009", ["Right"]),  # upper lobe of lung
        "urinary_bladder": ("Anatomical Structure", "89837001", []),
    }
    assert dicom_errors(path) == []
    back, read_names = seg_to_label(ds, volume)
    np.testing.assert_array_equal(back, label)
    assert read_names == names


def test_segments_that_share_a_label_keep_names_of_their_own(ct, tmp_path):
    """A viewer's SEG may label a left and a right kidney both "Kidney" (the side in the
    type's modifier) and every lesion "Lesion": each still gets a name of its own."""
    volume, sources = ct
    label = np.zeros(volume.shape, np.uint8)
    for value in range(1, 6):
        label[1, 40 * value:40 * value + 30, 200:260] = value
    seg = label_to_seg(label, sources, {1: "kidney_left", 2: "kidney_right", 3: "lesion", 4: "lesion", 5: "Lesion"})
    path = write_seg(tmp_path / "seg.dcm", seg)
    ds = pydicom.dcmread(path)
    for item in ds.SegmentSequence[:2]:
        item.SegmentLabel = "Kidney"
    back, names = seg_to_label(ds, volume)
    np.testing.assert_array_equal(back, label)
    assert names == {1: "Kidney left", 2: "Kidney right", 3: "lesion 3", 4: "lesion 4", 5: "Lesion 5"}


def test_the_names_of_a_common_label_set_get_their_codes():
    """TotalSegmentator's structure names: most get a type of DICOM's lists, the sides of
    paired organs as modifiers; those that spell no type are warned about, not guessed."""
    names = set()
    for file in ("class_map_total.json", "class_map_total_mr.json"):
        names |= set(json.loads((DATA / "totalsegmentator_example" / file).read_text()).values())
    names.discard("background")
    coded = {}
    for name in names:
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            codes = segment_codes(name)
        coded[name] = None if said else (codes.kind.value, codes.side.meaning if codes.side else None)
        assert bool(said) == (codes.kind.value == "85756007")  # a generic type always says so
    assert sum(c is not None for c in coded.values()) >= 100
    assert coded["rib_left_3"] == ("113197003", "Left")
    assert coded["kidney_cyst_right"] == ("367643001", None)  # a cyst, not the kidney
    assert coded["small_bowel"] == ("30315005", None)
    assert coded["inferior_vena_cava"] == ("64131007", None)
    assert coded["vertebrae_T12"] == ("23215003", None)
    assert coded["gluteus_maximus_left"] is None
    assert segment_codes("L1").kind.value == coded["vertebrae_L1"][0]  # a level alone is its vertebra


def test_an_empty_label_is_a_segment_without_voxels(ct, tmp_path):
    """"Nothing there" is an answer: an empty label is one segment (the lowest value
    named) whose frames are all empty, a valid SEG that reads back as an empty label."""
    volume, sources = ct
    seg = label_to_seg(np.zeros(volume.shape, np.uint8), sources, {2: "liver", 3: "spleen"})
    path = write_seg(tmp_path / "empty.dcm", seg)
    ds = pydicom.dcmread(path)
    assert [str(d.SegmentLabel) for d in ds.SegmentSequence] == ["liver"]
    assert int(ds.NumberOfFrames) == volume.shape[0]
    assert dicom_errors(path) == []
    label, names = seg_to_label(ds, volume)
    assert not label.any() and label.shape == volume.shape and names == {2: "liver"}


def test_bad_labels_are_refused(ct):
    volume, sources = ct
    with pytest.raises(InputError, match="does not fit the series"):
        label_to_seg(np.ones((2, 4, 4), np.uint8), sources, {1: "liver"})
    other = read_volume(DATA / "udacity_study3_mr_dicom" / "11_HCropVolume")
    with pytest.raises(InputError, match="refers to another series"):
        seg_to_label(pydicom.dcmread(CT / "liver.dcm"), other)


def test_a_segment_keeps_its_label_value_when_values_are_missing(ct, tmp_path):
    """A SEG numbers its segments 1..K; a label holding only values 2 and 5 comes back as
    2 and 5, not 1 and 2, because each segment says its value."""
    volume, sources = ct
    label = np.zeros(volume.shape, np.uint8)
    label[0, 100:150, 100:150], label[2, 300:340, 200:260] = 2, 5
    path = write_seg(tmp_path / "seg.dcm", label_to_seg(label, sources, {2: "spleen", 5: "aorta"}))
    ds = pydicom.dcmread(path)
    assert [int(item.SegmentNumber) for item in ds.SegmentSequence] == [1, 2]
    assert [item.SegmentDescription for item in ds.SegmentSequence] == ["label value 2", "label value 5"]
    assert dicom_errors(path) == []
    back, names = seg_to_label(ds, volume, known={"spleen": 7})  # what the SEG says comes first
    np.testing.assert_array_equal(back, label)
    assert names == {2: "spleen", 5: "aorta"}


def test_a_seg_made_elsewhere_takes_the_values_its_names_are_known_by(ct):
    volume, _ = ct
    truth = read_label(CT / "liver_seg.nrrd", volume)
    label, names = seg_to_label(pydicom.dcmread(CT / "liver.dcm"), volume, known={"LIVER": 3, "spleen": 1})
    np.testing.assert_array_equal(label, truth * 3)
    assert names == {3: "Liver"}


def test_segment_values_never_give_two_segments_one_value():
    from annotator.io.seg import segment_values

    names = {1: "anterior", 2: "posterior", 3: "new"}
    assert segment_values(names, {}, {}) == {1: 1, 2: 2, 3: 3}
    assert segment_values(names, {1: 2}, {"posterior": 2, "new": 1}) == {1: 2, 3: 1, 2: 3}
    assert segment_values(names, {1: 4, 2: 4}, {}) == {1: 4, 2: 2, 3: 3}
    # a label holds values 1..65535, as a SEG numbers its segments: each keeps its number where free
    assert segment_values({300: "liver", 2: "spleen"}, {}, {}) == {2: 2, 300: 300}
    assert segment_values({n: f"part {n}" for n in range(1, 301)}, {}, {}) == {n: n for n in range(1, 301)}
    assert segment_values({7: "a", 9: "b"}, {7: 9}, {}) == {7: 9, 9: 1}


def test_a_label_numbered_beyond_255_goes_to_a_seg_and_back_as_it_is(ct, tmp_path):
    """FreeSurfer numbers the cortex's parts from 1000: such a label (two bytes a voxel)
    makes a SEG whose segments say their values, and reads back voxel for voxel, where a
    byte would have folded 1035 onto 11."""
    volume, sources = ct
    label = read_label(CT / "liver_spine_seg.nrrd", volume).astype(np.uint16)
    label[label == 1] = 1035
    label[label == 2] = 11
    seg = label_to_seg(label, sources, {1035: "ctx-lh-precuneus", 11: "caudate"})
    back, names = seg_to_label(pydicom.dcmread(write_seg(tmp_path / "seg.dcm", seg)), volume)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, label)
    assert names == {1035: "ctx-lh-precuneus", 11: "caudate"}
    assert dicom_errors(tmp_path / "seg.dcm") == []


def test_a_fractional_seg_reads_as_the_segment_most_likely_at_each_voxel(ct):
    """A FRACTIONAL SEG (a model's probabilities) is a label: each voxel takes the segment
    of the highest fraction there, where that is at least one half."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    volume, sources = ct
    sources = sorted_sources([pydicom.dcmread(p) for p in sorted((CT / "ct-3slice").iterdir())])  # the volume's order
    for ds in sources:
        for keyword in _TYPE2_COPIED:
            if keyword not in ds:
                setattr(ds, keyword, "")
    rng = np.random.default_rng(0)
    fractions = rng.uniform(0, 1, (*volume.shape, 2)).astype(np.float32)
    fractions[..., 1] *= 0.7  # spleen's at most 0.7: where both are under a half, nothing
    descriptions = [hd.seg.SegmentDescription(
        segment_number=i + 1, segment_label=name, segmented_property_category=codes.SCT.Organ,
        segmented_property_type=kind, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="a model", version="1", family=codes.cid7162.ArtificialIntelligence))
        for i, (name, kind) in enumerate([("liver", codes.SCT.Liver), ("spleen", codes.SCT.Spleen)])]
    with pytest.warns(UserWarning, match="person name"):  # the sample's patient name, not ours to change
        seg = hd.seg.Segmentation(
            source_images=sources, pixel_array=fractions, segmentation_type=hd.seg.SegmentationTypeValues.FRACTIONAL,
            segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=5,
            sop_instance_uid=hd.UID(), instance_number=1, manufacturer="elsewhere", manufacturer_model_name="m",
            software_versions="1", device_serial_number="1", specific_character_set="ISO_IR 192")
    buffer = io.BytesIO()
    seg.save_as(buffer)
    label, names = seg_to_label(pydicom.dcmread(io.BytesIO(buffer.getvalue())), volume)
    stored = np.round(fractions * 255) / 255  # as the SEG holds them: 8 bits
    expected = np.where(stored.max(axis=-1) >= 0.5, stored.argmax(axis=-1) + 1, 0)
    np.testing.assert_array_equal(label, expected)
    assert names == {1: "liver", 2: "spleen"} and {0, 1, 2} == set(np.unique(label).tolist())


def test_segments_that_overlap_keep_the_smaller_and_say_so():
    """A SEG whose segments overlap (dcmqi's partial_overlaps.dcm): where two do, the smaller
    segment is the label (it was the higher-numbered one, silently), and a warning on the
    image names the pairs."""
    import highdicom as hd

    volume = read_volume(CT / "ct-3slice")
    seg = hd.seg.segread(CT / "partial_overlaps.dcm")
    masks = seg.get_pixels_by_source_instance(source_sop_instance_uids=list(volume.source.sop_uids),
                                              combine_segments=False, skip_overlap_checks=True,
                                              ignore_spatial_locations=True)
    numbers = [int(d.SegmentNumber) for d in seg.SegmentSequence]
    label, names = seg_to_label(seg, volume)
    expected = np.zeros(volume.shape, np.uint8)
    for i in sorted(range(len(numbers)), key=lambda i: -int(masks[..., i].sum())):
        expected[masks[..., i] > 0] = numbers[i]  # each segment keeps its number here: all are free values
    np.testing.assert_array_equal(label, expected)
    assert (np.sum(masks > 0, axis=-1) > 1).any()  # they do overlap
    [said] = [w for w in volume.warnings if "segments overlap" in w]
    assert "GREEN over ORANGE in 2,989 voxels" in said and "the smaller is kept" in said


def test_a_label_map_seg_reads_as_its_label(ct):
    """A LABELMAP SEG (the Label Map Segmentation storage class, one frame a slice, its
    values the segment numbers, a segment 0 for the background: highdicom writes them) reads
    as the label it holds (it was refused: 'Segment numbers array contains invalid values')."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    volume, sources = ct
    label = np.zeros(volume.shape, np.uint8)
    label[:, 100:200, 100:200], label[:, 250:300, 250:300] = 1, 2
    descriptions = [hd.seg.SegmentDescription(
        segment_number=number, segment_label=name, segmented_property_category=codes.SCT.Organ,
        segmented_property_type=kind, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
        for number, name, kind in ((1, "Liver", codes.SCT.Liver), (2, "Spleen", codes.SCT.Spleen))]
    seg = hd.seg.Segmentation(
        source_images=sorted_sources(sources), pixel_array=label,
        segmentation_type=hd.seg.SegmentationTypeValues.LABELMAP, segment_descriptions=descriptions,
        series_instance_uid=hd.UID(), series_number=5, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="elsewhere", manufacturer_model_name="a model", software_versions="1",
        device_serial_number="1", specific_character_set="ISO_IR 192")
    buffer = io.BytesIO()
    seg.save_as(buffer)
    back, names = seg_to_label(pydicom.dcmread(io.BytesIO(buffer.getvalue())), volume)
    np.testing.assert_array_equal(back, label)
    assert names == {1: "Liver", 2: "Spleen"}


@pytest.mark.filterwarnings("ignore:label .* has no SNOMED code")
def test_a_seg_for_a_server_is_deflated_and_reads_as_its_label(tmp_path):
    """An accepted label went to the server as an uncompressed BINARY SEG: the example CT's
    31 structures on 20 slices made 17 MB for each accept, kept in the upload queue until
    sent. Deflated it is a few hundredths of that and reads back the same; inflated it is
    the plain file again."""
    from annotator.datastore.orthanc import series_with_uids
    from annotator.io.seg import inflated
    from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

    example = DATA / "totalsegmentator_example"
    series_with_uids(example / "example_ct_dicom", tmp_path / "ct")  # the shared files have empty UIDs
    volume = read_volume(tmp_path / "ct")
    label = read_label(example / "example_seg_dicom.nii.gz", volume)
    names = {int(v): f"structure {v}" for v in np.unique(label) if v}
    _, plain = series_seg(label, volume, names)
    sop_uid, data = series_seg(label, volume, names, deflated=True)
    assert len(names) > 20 and len(data) * 20 < len(plain)
    seg = pydicom.dcmread(io.BytesIO(data))
    assert seg.file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian and seg.SOPInstanceUID == sop_uid
    back, read_names = seg_to_label(seg, volume)
    np.testing.assert_array_equal(back, label)
    assert read_names == names
    again = inflated(data)
    assert inflated(again) is None and inflated(plain) is None
    assert inflated(data[: len(data) // 2]) is None  # a damaged file: sent, and refused, as it is
    assert pydicom.dcmread(io.BytesIO(again)).file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    (tmp_path / "seg.dcm").write_bytes(again)  # (dciodvfy reads no deflated file: files written here stay plain)
    assert dicom_errors(tmp_path / "seg.dcm") == []
    np.testing.assert_array_equal(seg_to_label(pydicom.dcmread(io.BytesIO(again)), volume)[0], label)
