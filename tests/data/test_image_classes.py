"""Brain-tumour image classes: the tumour-type mapping and tasks, class folders, CSVs, DICOM, RGB -> grey.

The tiny images below are written here with PIL, nibabel and pydicom, independently of the adapter and
of the phantom writer.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged
from PIL import Image

from common.data import image_classes
from common.data.datalist import DATALIST_SECTIONS, build_datalist, load_datalist_section, prepare_datalist
from common.data.errors import DataFormatError
from common.data.image_classes import (
    ADAPTER,
    LUMA_WEIGHTS,
    PAPER_TUMOUR_TYPES,
    TASK_CLASSES,
    TUMOUR_TYPES,
    ImageClassesAdapter,
    ToGreySliced,
    check_image_file,
    load_image_slice,
    normalise_class_name,
    task_label,
    tumour_category,
)
from common.data.registry import get_adapter

SOURCE = ImageClassesAdapter(task="source")


def grey(seed: int = 0, shape: tuple[int, int] = (12, 10)) -> np.ndarray:
    """A (rows, cols) uint8 picture."""
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def png(path: Path, pixels: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grey() if pixels is None else pixels).save(path)
    return path


def tree(root: Path, spec: dict[str, dict[str, int]]) -> None:
    """``{class: {patient: n_slices}}`` as ``root/<class>/<patient>/s<k>.png``."""
    for cls, patients in spec.items():
        for patient, n in patients.items():
            for k in range(n):
                png(root / cls / patient / f"s{k}.png", grey(k))


def write_dicom(
    path: Path, pixels: np.ndarray, slope: float = 1.0, intercept: float = 0.0, frames: int = 1
) -> Path:
    """A single-frame (or ``frames``-frame) MR DICOM of uint16 ``pixels`` (rows, cols), by pydicom."""
    pytest.importorskip("pydicom")
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientID = "MR", "P1"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    ds.PixelSpacing, ds.ImagePositionPatient = [0.5, 0.5], [0, 0, 0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = np.tile(pixels.astype(np.uint16), (frames, 1, 1)).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


LOAD = Compose(
    [LoadImaged(keys="image", image_only=True), EnsureChannelFirstd(keys="image"), ToGreySliced("image")]
)


# ------------------------------------------------------------------------------------------ the mapping


def test_paper_types_and_synonyms_map_to_categories() -> None:
    assert [tumour_category(t) for t in PAPER_TUMOUR_TYPES] == ["primary"] * 4 + ["secondary"] * 3 + [
        "absent"
    ]
    for name in ("No Tumor", "notumor", "no_tumor", "no-tumour", "Normal", "NO"):
        assert tumour_category(name) == "absent", name
    for name in ("Glioma", "meningioma_tumor", "Pituitary", "pituitary tumor", "Cavernous hemangioma"):
        assert tumour_category(name) == "primary", name
    for name in ("Metastasis", "brain metastases", "Lung cancer brain metastasis", "breast_metastasis"):
        assert tumour_category(name) == "secondary", name
    assert tumour_category("yes") == "tumour"  # source unknown
    assert (
        normalise_class_name(" Colorectal-Cancer  Brain Metastases ") == "colorectal_cancer_brain_metastasis"
    )


def test_task_labels() -> None:
    assert TASK_CLASSES == {"presence": ("absent", "present"), "source": ("primary", "secondary")}
    table = {
        c: (task_label(c, "presence"), task_label(c, "source")) for c in ("absent", "primary", "secondary")
    }
    assert table == {"absent": (0, None), "primary": (1, 0), "secondary": (1, 1)}
    assert (task_label("tumour", "presence"), task_label("tumour", "source")) == (1, None)
    with pytest.raises(ValueError, match="task must be one of"):
        task_label("primary", "grade")
    with pytest.raises(ValueError, match="task must be one of"):
        ImageClassesAdapter(task="type")


def test_unknown_class_names_it_and_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match=r"x\.csv, row 3: unknown tumour class 'Ependymoma'.*'glioma'"):
        tumour_category("Ependymoma", source="x.csv, row 3")
    tree(tmp_path, {"glioma": {"p1": 1}, "Ependymoma": {"p2": 1}})
    with pytest.raises(
        DataFormatError, match=r"Ependymoma: unknown tumour class.*tumour_types=\{\*\*TUMOUR_TYPES"
    ):
        ADAPTER.find_cases(tmp_path)
    extended = ImageClassesAdapter(tumour_types={**TUMOUR_TYPES, "ependymoma": "primary"})
    items = extended.find_cases(tmp_path).items
    assert [(it["tumour_type"], it["category"]) for it in items] == [
        ("Ependymoma", "primary"),
        ("glioma", "primary"),
    ]
    with pytest.raises(ValueError, match="categories are"):
        ImageClassesAdapter(tumour_types={"x": "benign"})


def test_no_known_class_folder_lists_what_it_found(tmp_path: Path) -> None:
    tree(tmp_path, {"astroblastoma": {"p": 1}, "ependymoma": {"p": 1}})
    assert not ADAPTER.has_data(tmp_path)
    with pytest.raises(DataFormatError, match=r"\['astroblastoma', 'ependymoma'\] is a known tumour class"):
        ADAPTER.detect_layout(tmp_path)
    with pytest.raises(DataFormatError, match="does not exist"):
        ADAPTER.detect_layout(tmp_path / "missing")


# ------------------------------------------------------------------------------------------ folders


def test_folder_tree_with_patient_folders(tmp_path: Path) -> None:
    tree(
        tmp_path,
        {"no_tumour": {"N1": 2}, "Glioma": {"G1": 1}, "lung_metastasis": {"M1": 2}, "yes": {"Y1": 1}},
    )
    assert ADAPTER.has_data(tmp_path) and ADAPTER.detect_layout(tmp_path) == "folders"
    cases = ADAPTER.find_cases(tmp_path)
    assert cases.layout == "folders" and not cases.problems
    assert cases.items[0] == {
        "image": "Glioma/G1/s0.png",
        "label": 1,
        "patient": "G1",
        "case": "Glioma/G1/s0",
        "tumour_type": "Glioma",
        "category": "primary",
    }
    presence = [(it["patient"], it["label"]) for it in cases.items]
    assert presence == [("G1", 1), ("M1", 1), ("M1", 1), ("N1", 0), ("N1", 0), ("Y1", 1)]
    source = [(it["patient"], it["label"], it["category"]) for it in SOURCE.find_cases(tmp_path).items]
    assert source == [
        ("G1", 0, "primary"),
        ("M1", 1, "secondary"),
        ("M1", 1, "secondary"),
    ]  # no absent, no "yes"
    assert ADAPTER.output_name(cases.items[0]) == "Glioma_G1_s0"
    header = build_datalist(SOURCE, tmp_path, ratios=(1, 0, 0))
    assert (header["task"], header["labels"], header["layout"]) == (
        "source",
        {"0": "primary", "1": "secondary"},
        "folders",
    )


def test_files_without_patient_folders_are_their_own_patients_or_take_a_csv(tmp_path: Path) -> None:
    png(tmp_path / "glioma" / "a.png")
    png(tmp_path / "glioma" / "b.jpg")
    png(tmp_path / "no_tumour" / "c.png")
    assert [it["patient"] for it in ADAPTER.find_cases(tmp_path).items] == [
        "glioma/a",
        "glioma/b",
        "no_tumour/c",
    ]
    (tmp_path / "patients.csv").write_text(
        "file,Subject\nglioma/a.png,S1\nglioma/b.jpg,S1\nno_tumour/c.png,S2\n"
    )
    assert ADAPTER.detect_layout(tmp_path) == "folders"  # no label column: a patient table
    assert [it["patient"] for it in ADAPTER.find_cases(tmp_path).items] == ["S1", "S1", "S2"]


def test_class_folders_one_level_down_in_parts(tmp_path: Path) -> None:
    """Kaggle's layout: Training/<class>/..., Testing/<class>/..."""
    for part in ("Training", "Testing"):
        png(tmp_path / part / "glioma" / f"{part}_1.jpg")
        png(tmp_path / part / "notumor" / f"{part}_2.jpg")
    items = ADAPTER.find_cases(tmp_path).items
    assert [it["image"] for it in items] == [
        "Testing/glioma/Testing_1.jpg",
        "Testing/notumor/Testing_2.jpg",
        "Training/glioma/Training_1.jpg",
        "Training/notumor/Training_2.jpg",
    ]
    assert [it["label"] for it in items] == [1, 0, 1, 0]


def test_bad_folder_inputs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tree(tmp_path, {"glioma": {"p1": 1}, "no_tumour": {"p2": 1}})
    (tmp_path / "glioma" / "p1" / "notes.txt").write_text("not an image")
    (tmp_path / "glioma" / "p1" / "Thumbs.db").write_text("")
    with caplog.at_level(logging.WARNING, logger="common.data.image_classes"):
        assert len(ADAPTER.find_cases(tmp_path).items) == 2
    assert "ignored 1 file(s) that are not images (glioma/p1/notes.txt" in caplog.text
    (tmp_path / "meningioma").mkdir()
    with pytest.raises(DataFormatError, match=r"meningioma: class folder has no image files"):
        ADAPTER.find_cases(tmp_path)
    (tmp_path / "meningioma").rmdir()
    fake = tmp_path / "no_tumour" / "p2" / "fake.png"
    fake.write_text("<html>not a picture</html>")
    with pytest.raises(DataFormatError, match=r"fake\.png: cannot be read as an image"):
        ADAPTER.find_cases(tmp_path)
    collected = ADAPTER.find_cases(tmp_path, on_error="collect")
    assert len(collected.items) == 2 and [p for p, _ in collected.problems] == ["no_tumour/p2/fake.png"]
    fake.unlink()
    volume = tmp_path / "no_tumour" / "p2" / "vol.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((9, 9, 3), np.float32), np.eye(4)), volume)
    with pytest.raises(DataFormatError, match=r"vol\.nii\.gz: expected a 2D NIfTI slice"):
        ADAPTER.find_cases(tmp_path)


def test_check_case_reads_the_pixels(tmp_path: Path) -> None:
    nan = np.zeros((10, 10, 1), np.float32)
    nan[2, 3] = np.nan
    nib.save(nib.Nifti1Image(nan, np.eye(4)), tmp_path / "nan.nii.gz")
    with pytest.raises(DataFormatError, match="1 NaN or infinite"):
        ADAPTER.check_case({"image": "nan.nii.gz"}, tmp_path)
    png(tmp_path / "small.png", grey(shape=(4, 20)))
    with pytest.raises(DataFormatError, match="too small"):
        check_image_file(tmp_path / "small.png")
    with pytest.raises(DataFormatError, match="does not exist"):
        check_image_file(tmp_path / "gone.dcm")


# ------------------------------------------------------------------------------------------ CSV


def test_csv_with_paths_patients_and_labels(tmp_path: Path) -> None:
    png(tmp_path / "img" / "a.png")
    png(tmp_path / "img" / "b.png")
    outside = png(tmp_path.parent / f"{tmp_path.name}_outside" / "c.png")
    (tmp_path / "labels.csv").write_text(
        "Image;Subject;Diagnosis\nimg/a.png;S1;Glioma\nimg/b.png;S2;No tumour\n"
        f"{outside};S1;Breast metastasis\n"
    )
    assert ADAPTER.detect_layout(tmp_path) == "csv"
    items = ADAPTER.find_cases(tmp_path).items
    assert [(it["image"], it["patient"], it["label"], it["tumour_type"]) for it in items] == [
        ("img/a.png", "S1", 1, "Glioma"),
        ("img/b.png", "S2", 0, "No tumour"),
        (outside.as_posix(), "S1", 1, "Breast metastasis"),
    ]
    assert [it["label"] for it in SOURCE.find_cases(tmp_path).items] == [0, 1]
    section = load_datalist_section_of(tmp_path, build_datalist(ADAPTER, tmp_path, ratios=(1, 0, 0)))
    assert [it["label"] for it in section] == [1, 0, 1]  # class indices are kept as they are
    assert section[0]["image"] == str(tmp_path / "img" / "a.png") and section[2]["image"] == str(outside)


def load_datalist_section_of(tmp_path: Path, datalist: dict) -> list[dict]:
    path = tmp_path.parent / f"{tmp_path.name}_dl.json"
    path.write_text(json.dumps(datalist))
    return load_datalist_section(path, "training", tmp_path)


def test_csv_columns_given_and_found(tmp_path: Path) -> None:
    png(tmp_path / "x.png")
    (tmp_path / "meta.csv").write_text("Picture,Who,Finding\nx.png,S1,glioma\n")
    with pytest.raises(DataFormatError, match=r"no path column.*header: \['Picture', 'Who', 'Finding'\]"):
        ImageClassesAdapter(csv_file="meta.csv").find_cases(tmp_path)
    with pytest.raises(DataFormatError, match=r"no label column.*header: \['Picture', 'Who', 'Finding'\]"):
        ImageClassesAdapter(columns={"path": "Picture"}).find_cases(tmp_path)
    adapter = ImageClassesAdapter(columns={"path": "Picture", "patient": "who", "label": "Finding"})
    assert [(it["patient"], it["label"]) for it in adapter.find_cases(tmp_path).items] == [("S1", 1)]
    with pytest.raises(DataFormatError, match=r"no column 'Diag' \(given as the label column\)"):
        ImageClassesAdapter(columns={"path": "Picture", "label": "Diag"}).find_cases(tmp_path)
    with pytest.raises(ValueError, match="columns may name"):
        ImageClassesAdapter(columns={"grade": "g"})


def test_csv_without_patient_column_each_row_is_a_patient(tmp_path: Path, caplog) -> None:
    png(tmp_path / "a.png")
    png(tmp_path / "b.png")
    (tmp_path / "t.csv").write_text("path,label\na.png,normal\nb.png,glioma\n")
    with caplog.at_level(logging.WARNING, logger="common.data.image_classes"):
        assert [it["patient"] for it in ADAPTER.find_cases(tmp_path).items] == ["a", "b"]
    assert "no patient column" in caplog.text


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        ("a.png,S1,glioma\nmissing.png,S2,glioma\n", r"t\.csv: row 3: image missing\.png does not exist"),
        ("a.png,S1,glioma\na.png,S2,glioma\n", r"t\.csv: row 3: a\.png is also in row 2"),
        ("a.png,S1,ependymoma\n", r"t\.csv, row 2: unknown tumour class 'ependymoma'"),
        ("a.png,,glioma\n", r"t\.csv: row 2: empty 'patient'"),
        ("a.png,S1,\n", r"t\.csv: row 2: empty 'label'"),
        ("notes.txt,S1,glioma\n", r"t\.csv: row 2: notes\.txt is not an image file"),
    ],
)
def test_bad_csv_rows_name_the_row_and_path(tmp_path: Path, rows: str, problem: str) -> None:
    png(tmp_path / "a.png")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "t.csv").write_text("path,patient,label\n" + rows)
    with pytest.raises(DataFormatError, match=problem):
        ADAPTER.find_cases(tmp_path)


def test_several_csvs_need_csv_file(tmp_path: Path) -> None:
    png(tmp_path / "a.png")
    for name in ("one.csv", "two.csv"):
        (tmp_path / name).write_text("path,patient,label\na.png,S1,glioma\n")
    with pytest.raises(DataFormatError, match=r"several CSV files.*pass csv_file"):
        ADAPTER.detect_layout(tmp_path)
    assert len(ImageClassesAdapter(csv_file="two.csv").find_cases(tmp_path).items) == 1
    with pytest.raises(DataFormatError, match="csv_file does not exist"):
        ImageClassesAdapter(csv_file="three.csv").find_cases(tmp_path)


# ------------------------------------------------------------------------------------------ splits


def test_ten_folds_by_patient(tmp_path: Path) -> None:
    classes = ["no_tumour", "glioma", "meningioma", "lung_metastasis", "breast_metastasis"]
    tree(tmp_path, {cls: {f"{cls[:2]}{p}": 1 + p % 3 for p in range(3)} for cls in classes})  # 15 patients
    tested: dict[str, int] = {}
    for fold in range(10):
        path = prepare_datalist(
            "image_classes", tmp_path, tmp_path.parent / f"f{fold}.json", fold=fold, n_folds=10
        )
        dl = json.loads(Path(path).read_text())
        patients = [{it["patient"] for it in dl[s]} for s in DATALIST_SECTIONS]
        assert not (patients[0] & patients[1] or patients[0] & patients[2] or patients[1] & patients[2])
        assert sum(len(dl[s]) for s in DATALIST_SECTIONS) == 30
        for p in patients[2]:
            tested[p] = tested.get(p, 0) + 1
    assert len(tested) == 15 and set(tested.values()) == {1}  # every patient tested once
    again = build_datalist("image_classes", tmp_path, fold=3, n_folds=10)
    assert again == json.loads((tmp_path.parent / "f3.json").read_text())  # deterministic


def test_registered_with_phantoms(tmp_path: Path) -> None:
    assert get_adapter("image_classes") is ADAPTER and ADAPTER.task == "presence"
    path = prepare_datalist(
        "image_classes",
        tmp_path / "data",
        tmp_path / "dl.json",
        generate_phantoms=True,
        phantom_kwargs={"n_patients": 8, "slices_per_patient": 2, "size": 32},
    )
    dl = json.loads(Path(path).read_text())
    items = [it for s in DATALIST_SECTIONS for it in dl[s]]
    assert len(items) == 16 and {it["tumour_type"] for it in items} == {
        "no_tumour",
        "glioma",
        "meningioma",
        "metastasis",
    }


# ------------------------------------------------------------------------------------------ loading


def test_rgb_is_converted_to_luma_with_one_warning_per_file(tmp_path: Path, caplog) -> None:
    rgb = np.stack([grey(1), grey(2), grey(3)], axis=-1)
    path = png(tmp_path / "rgb.png", rgb)
    image_classes._WARNED.clear()
    with caplog.at_level(logging.WARNING, logger="common.data.image_classes"):
        first = LOAD({"image": str(path)})["image"]
        second = LOAD({"image": str(path)})["image"]
    assert caplog.text.count("rgb.png: colour image converted to grey with the ITU-R BT.601 luma") == 1
    expected = (rgb.astype(np.float64) @ np.array(LUMA_WEIGHTS)).T  # (cols, rows): axis 0 = column
    assert tuple(first.shape) == (1, 10, 12)
    np.testing.assert_allclose(first[0].numpy(), expected, atol=1e-3)
    np.testing.assert_allclose(second.numpy(), first.numpy())
    np.testing.assert_allclose(load_image_slice(path), expected, atol=0.01)  # PIL's "F" uses the same weights
    rgba = png(tmp_path / "rgba.png", np.concatenate([rgb, np.full((12, 10, 1), 9, np.uint8)], axis=-1))
    np.testing.assert_allclose(LOAD({"image": str(rgba)})["image"][0].numpy(), expected, atol=1e-3)


def test_grey_stored_as_rgb_is_converted_silently(tmp_path: Path, caplog) -> None:
    path = png(tmp_path / "g.png", np.repeat(grey(4)[..., None], 3, axis=-1))
    with caplog.at_level(logging.WARNING, logger="common.data.image_classes"):
        image = LOAD({"image": str(path)})["image"]
    assert not caplog.text
    np.testing.assert_allclose(image[0].numpy(), grey(4).T.astype(np.float32), atol=1e-3)


def test_one_pipeline_for_png_16_bit_and_nifti_slices(tmp_path: Path) -> None:
    pixels = (grey(5).astype(np.uint16) * 16).astype(np.uint16)  # up to 4080
    sixteen = png(tmp_path / "s.png", pixels)
    assert Image.open(sixteen).mode.startswith("I")
    nii = tmp_path / "s.nii.gz"
    nib.save(nib.Nifti1Image(pixels.T[..., None].astype(np.int16), np.eye(4)), nii)  # (X, Y, 1)
    for path in (sixteen, nii):
        image = LOAD({"image": str(path)})["image"]
        assert tuple(image.shape) == (1, 10, 12), path
        np.testing.assert_array_equal(image[0].numpy(), pixels.T.astype(np.float32))
        check_image_file(path)


def test_dicom_slices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stored = (np.arange(12 * 10).reshape(12, 10) * 3).astype(np.uint16)  # rows x cols
    path = write_dicom(tmp_path / "metastasis" / "p1" / "im1.dcm", stored, slope=2.0, intercept=-5.0)
    expected = stored.T.astype(np.float32) * 2 - 5  # rescaled, axis 0 = column
    np.testing.assert_array_equal(load_image_slice(path), expected)
    (item,) = ADAPTER.find_cases(tmp_path).items
    assert (item["image"], item["patient"], item["label"]) == ("metastasis/p1/im1.dcm", "p1", 1)
    ADAPTER.check_case(item, tmp_path)
    loaded = LOAD({"image": str(path)})["image"]  # MONAI's default reader for DICOM (ITK) rescales too
    assert tuple(loaded.shape) == (1, 10, 12)
    np.testing.assert_allclose(loaded[0].numpy(), expected)
    monkeypatch.setattr(image_classes, "HAS_PYDICOM", False)  # the SimpleITK fallback reads the same
    np.testing.assert_array_equal(load_image_slice(path), expected)
    ADAPTER.find_cases(tmp_path)


def test_multi_frame_and_broken_dicom_are_errors(tmp_path: Path) -> None:
    write_dicom(tmp_path / "glioma" / "p1" / "multi.dcm", np.ones((9, 9), np.uint16), frames=2)
    with pytest.raises(DataFormatError, match=r"multi\.dcm: DICOM has 2 frames"):
        ADAPTER.find_cases(tmp_path)
    (tmp_path / "glioma" / "p1" / "multi.dcm").write_bytes(b"not a dicom file at all")
    with pytest.raises(DataFormatError, match=r"multi\.dcm: cannot be read as DICOM"):
        ADAPTER.find_cases(tmp_path)
