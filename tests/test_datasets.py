"""Dataset readers (``eval``, ``models calibrate``, training): a table that is not what the layout
needs is a one-line DataError naming the file, never a KeyError or AttributeError traceback."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_bus.datasets import read_busbra, read_dataset, read_folds
from edge_bus.errors import ConfigError, DataError


def _busbra(root: Path, table: str | bytes) -> Path:
    (root / "Images").mkdir(parents=True)
    (root / "Masks").mkdir()
    cv2.imwrite(str(root / "Images" / "bus_0001-l.png"), np.full((32, 32), 90, np.uint8))
    data = table.encode() if isinstance(table, str) else table
    (root / "bus_data.csv").write_bytes(data)
    return root


def test_a_busbra_table_is_read_with_or_without_a_byte_order_mark(tmp_path: Path) -> None:
    """A spreadsheet's 'CSV UTF-8' export starts with a BOM, which made the first column '\\ufeffID'."""
    for name, prefix in (("plain", b""), ("bom", b"\xef\xbb\xbf")):
        root = _busbra(tmp_path / name, prefix + b"ID,Pathology\nbus_0001-l,Malignant\n")
        [item] = read_busbra(root)
        assert (item.image.name, item.label, item.masks) == ("bus_0001-l.png", "malignant", ())


def test_a_busbra_images_scanner_is_read_from_its_device_column(tmp_path: Path) -> None:
    root = _busbra(tmp_path / "with", "ID,Pathology,Device\nbus_0001-l,benign, GE Logiq 7 @10-14MHz \n")
    assert [i.device for i in read_busbra(root)] == ["GE Logiq 7 @10-14MHz"]
    root = _busbra(tmp_path / "without", "ID,Pathology\nbus_0001-l,benign\n")  # no column: not named
    assert [i.device for i in read_busbra(root)] == [None]


@pytest.mark.parametrize(("table", "message"), [
    ("id,pathology\nbus_0001-l,benign\n", "has columns id, pathology; a BUS-BRA layout needs 'ID' and 'Pathology'"),
    ("ID,Pathology\nbus_0001-l\n", "unknown pathology '' for bus_0001-l .* line 2; valid: normal, benign, malignant"),
    ("ID,Pathology\n,benign\n", "line 2: no ID"),
    (b"ID,Pathology\n\xff\xfe,benign\n", "cannot read .*bus_data.csv as a CSV table"),
    ("", "has columns none"),
])
def test_a_busbra_table_that_does_not_fit_is_one_data_error(tmp_path: Path, table: str | bytes, message: str) -> None:
    """The wrong header was KeyError: 'ID'; a short row AttributeError: 'NoneType' ... 'strip'."""
    root = _busbra(tmp_path / "bb", table)
    with pytest.raises(DataError, match=message):
        read_busbra(root)


@pytest.mark.parametrize(("table", "message"), [
    ("image,fold\na.png\n", "a row has no 'fold' value"),
    (b"image,fold\n\xff,1\n", "as a CSV table"),
    ("image,fold\na.png,one\n", "is not a whole number"),
])
def test_a_folds_table_that_does_not_fit_is_one_data_error(tmp_path: Path, table: str | bytes, message: str) -> None:
    path = tmp_path / "folds.csv"
    path.write_bytes(table.encode() if isinstance(table, str) else table)
    with pytest.raises(DataError, match=message):
        read_folds(path, "image", "fold")


def test_a_config_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    """It was a UnicodeDecodeError traceback (and the file was read in the locale's encoding)."""
    from edge_bus.config import load_toml

    path = tmp_path / "edge-bus.toml"
    path.write_bytes(b"\xff\xfe[source]\n")
    with pytest.raises(ConfigError, match="cannot read config file .*utf-8"):
        load_toml(path)
    path.write_text('[source]\nsource = "démo.avi"\n', encoding="utf-8")
    assert load_toml(path)["source"] == "démo.avi"


def test_an_image_too_small_to_score_names_the_file(tmp_path: Path) -> None:
    """It was a SourceError ('check the source', exit 3) that did not say which image."""
    from helpers import tiny_model_dir

    from edge_bus.evaluation import evaluate

    (tmp_path / "data" / "benign").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "data" / "benign" / "tiny (1).png"), np.full((8, 8), 90, np.uint8))
    mask = np.zeros((8, 8), np.uint8)
    mask[2:6, 2:6] = 255
    cv2.imwrite(str(tmp_path / "data" / "benign" / "tiny (1)_mask.png"), mask)
    with pytest.raises(DataError, match=r"tiny \(1\)\.png: .*16"):
        evaluate(tmp_path / "data", model=str(tiny_model_dir(tmp_path / "model")), backend="onnxruntime",
                 precision="fp32")


def test_a_lesion_image_without_its_mask_is_named_not_scored_as_dice_zero(tmp_path: Path) -> None:
    """It was scored against an empty mask (Dice 0), with no word said, pulling the mean down."""
    from helpers import tiny_model_dir

    from edge_bus.evaluation import evaluate

    for label in ("benign", "normal"):
        folder = tmp_path / "data" / label
        folder.mkdir(parents=True)
        cv2.imwrite(str(folder / f"{label} (1).png"), np.full((64, 64), 90, np.uint8))
    cv2.imwrite(str(tmp_path / "data" / "normal" / "normal (1)_mask.png"), np.zeros((64, 64), np.uint8))
    model = str(tiny_model_dir(tmp_path / "model"))
    with pytest.raises(DataError, match=r"benign \(1\)\.png is a benign image without a mask file"):
        evaluate(tmp_path / "data", model=model, backend="onnxruntime", precision="fp32")
    empty = np.zeros((64, 64), np.uint8)
    cv2.imwrite(str(tmp_path / "data" / "benign" / "benign (1)_mask.png"), empty)
    with pytest.raises(DataError, match=r"benign \(1\)\.png is a benign image whose mask is empty"):
        evaluate(tmp_path / "data", model=model, backend="onnxruntime", precision="fp32")
    cv2.imwrite(str(tmp_path / "data" / "benign" / "benign (1)_mask.png"), np.full((64, 64), 255, np.uint8))
    with pytest.raises(DataError, match=r"benign \(1\)\.png is a benign image whose mask marks every pixel"):
        evaluate(tmp_path / "data", model=model, backend="onnxruntime", precision="fp32")  # Dice 0.04 otherwise
    empty[20:40, 20:40] = 1  # a 0/1 mask, as numpy saves one: read as a lesion (a cut at 127 read it empty)
    cv2.imwrite(str(tmp_path / "data" / "benign" / "benign (1)_mask.png"), empty)
    assert evaluate(tmp_path / "data", model=model, backend="onnxruntime", precision="fp32").n_images == 2


def test_a_png_whose_header_claims_too_many_pixels_is_a_data_error(tmp_path: Path) -> None:
    """OpenCV raises (not returns None) for a 50000x50000 header: a cv2.error traceback from eval."""
    import struct
    import zlib

    from edge_bus.datasets import LabeledImage

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 50000, 50000, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))
    (tmp_path / "x.png").write_bytes(png)
    with pytest.raises(DataError, match=r"cannot read image .*x\.png: .*"):
        LabeledImage(tmp_path / "x.png", (), "normal", None, "busi").load()


def test_busi_folders_read_png_in_any_case_and_pass_over_dot_files(tmp_path: Path) -> None:
    """A.PNG was dropped without a word, an image named case_mask_review.png taken for a mask, and a
    macOS ._X.png metadata file stopped the run as "an image without a mask file"."""
    folder = tmp_path / "benign"
    folder.mkdir()
    for name in ("A.PNG", "A_mask.png", "case_mask_review.png", "case_mask_review_mask.png", "b.png", "b_mask.png",
                 "b_mask_1.png"):
        cv2.imwrite(str(folder / name), np.full((20, 20), 90, np.uint8))
    (folder / "._b.png").write_bytes(b"\0\5\26\7Mac OS X")
    items = read_dataset(tmp_path)
    assert {i.image.name: [m.name for m in i.masks] for i in items} == {
        "A.PNG": ["A_mask.png"], "b.png": ["b_mask.png", "b_mask_1.png"],
        "case_mask_review.png": ["case_mask_review_mask.png"]}


def test_a_folds_csv_is_applied_only_when_asked_for(tmp_path: Path) -> None:
    """A folds.csv beside Dataset_BUSI_with_GT was applied without --folds, and the images it did not
    list were dropped without a word (1 image scored of 2)."""
    folder = tmp_path / "Dataset_BUSI_with_GT" / "benign"
    folder.mkdir(parents=True)
    for name in ("benign (1).png", "benign (2).png"):
        cv2.imwrite(str(folder / name), np.full((20, 20), 90, np.uint8))
    (tmp_path / "folds.csv").write_text("image,fold\nbenign/benign (1).png,0\n")
    assert len(read_dataset(tmp_path)) == 2
    assert [i.image.name for i in read_dataset(tmp_path, folds=[0])] == ["benign (1).png"]
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("image,fold\nbenign (1).png,0\n")  # keys without the class folder
    with pytest.raises(DataError, match=r"none of the 2 images under .* is listed in .*wrong.csv \(it lists e.g. "
                                        r"'benign \(1\).png'; an image here is 'benign/benign \(1\).png'\)"):
        read_dataset(tmp_path, wrong, [0])


def test_an_image_listed_twice_is_a_data_error(tmp_path: Path) -> None:
    """A bus_data.csv row given twice scored that image twice; a folds CSV row given twice kept the last."""
    root = _busbra(tmp_path / "bb", "ID,Pathology\nbus_0001-l,benign\nbus_0001-l,benign\n")
    with pytest.raises(DataError, match="line 3: bus_0001-l is listed twice"):
        read_busbra(root)
    folds = tmp_path / "folds.csv"
    folds.write_text("image,fold\na.png,0\na.png,1\n")
    with pytest.raises(DataError, match="line 3: 'a.png' is listed twice"):
        read_folds(folds, "image", "fold")
    with pytest.raises(DataError, match="bus_data.csv lists no images"):
        read_busbra(_busbra(tmp_path / "empty", "ID,Pathology\n"))


def test_a_file_given_as_the_dataset_folder_is_named_as_a_file(tmp_path: Path) -> None:
    """``eval --data clip.avi`` said the folder "does not exist" though the path was there."""
    clip = tmp_path / "clip.avi"
    clip.write_bytes(b"x")
    with pytest.raises(DataError, match="clip.avi is a file: give the folder that holds the images"):
        read_dataset(clip)
    with pytest.raises(DataError, match="does not exist"):
        read_dataset(tmp_path / "nowhere")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(DataError, match="is a link to nothing"):
        read_dataset(tmp_path / "loop")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"fold": "0"}, "fold must be a whole number, got '0'"),  # read as "fold 0 has no images"
    ({"stride": 0}, "stride must be at least 1"),  # a bare ValueError from the slice
    ({"limit": "3"}, "limit must be a whole number"),
])
def test_evaluate_refuses_arguments_of_the_wrong_kind(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    from edge_bus.evaluation import evaluate

    with pytest.raises(ConfigError, match=message):
        evaluate(tmp_path, tmp_path / "folds.csv", **{"fold": 0, **kwargs})  # type: ignore[arg-type]


def test_an_indexed_image_that_is_missing_is_named_as_missing_not_as_maskless(tmp_path: Path) -> None:
    """A bus_data.csv row whose image is not in Images/ read "... is a malignant image without a mask file"."""
    from edge_bus.datasets import LabeledImage
    from edge_bus.evaluation import require_masks

    gone = LabeledImage(tmp_path / "Images" / "bus_0006-s.png", (), "malignant", 1, "busbra")
    with pytest.raises(DataError, match=r"bus_0006-s.png does not exist \(it is listed in the dataset's index\)"):
        require_masks([gone])


def test_a_16_bit_mask_is_read_as_its_values_not_its_top_8_bits(tmp_path: Path) -> None:
    """A 0/255 mask saved as 16 bits read as all zero: every lesion scored Dice 0."""
    from edge_bus.datasets import LabeledImage

    cv2.imwrite(str(tmp_path / "a.png"), np.full((20, 30), 100, np.uint8))
    mask = np.zeros((20, 30), np.uint16)
    mask[5:10, 5:15] = 255
    cv2.imwrite(str(tmp_path / "a_mask.png"), mask)
    _, read = LabeledImage(tmp_path / "a.png", (tmp_path / "a_mask.png",), "benign", None, "busi").load()
    assert int(read.sum()) == 50


def test_busi_mask_names_in_any_case_are_masks_and_masks_without_an_image_are_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """benign (1)_MASK.png was scored as a benign image (and normal X_MASK.png as normal images, skewing the
    normals flagged); a mask whose image is a .jpg (not read) was left out without a word."""
    folder = tmp_path / "benign"
    folder.mkdir()
    for name in ("benign (1).png", "benign (1)_MASK.png", "benign (1)_Mask_1.png", "benign (2)_mask.png"):
        cv2.imwrite(str(folder / name), np.full((32, 32), 90, np.uint8))
    with caplog.at_level("WARNING"):
        [item] = read_dataset(tmp_path)
    assert item.image.name == "benign (1).png" and [m.name for m in item.masks] == ["benign (1)_MASK.png",
                                                                                      "benign (1)_Mask_1.png"]
    assert "1 mask file(s) under" in caplog.text and "benign/benign (2)_mask.png" in caplog.text


def test_a_folder_with_both_layouts_is_refused_not_read_half(tmp_path: Path) -> None:
    """It read the BUS-BRA half (3 images) and left the BUSI class folders out without a word."""
    _busbra(tmp_path, "ID,Pathology\nbus_0001-l,benign\n")
    (tmp_path / "benign").mkdir()
    with pytest.raises(DataError, match=r"holds both a BUS-BRA layout .* and BUSI class folders \(benign/\)"):
        read_dataset(tmp_path)


def test_a_missing_busbra_mask_and_a_folder_named_as_an_image_are_named_as_such(tmp_path: Path) -> None:
    from edge_bus.evaluation import require_masks

    root = _busbra(tmp_path / "bb", "ID,Pathology\nbus_0001-l,benign\n")
    with pytest.raises(DataError, match=r"without a mask file \(.*bb/Masks/mask_0001-l\.png\)"):
        require_masks(read_busbra(root))  # it said "bus_0001-l_mask.png beside it, or Masks/mask_*.png"
    (tmp_path / "busi" / "benign" / "weird.png").mkdir(parents=True)
    with pytest.raises(DataError, match=r"weird\.png is a folder, not an image"):  # "does not exist (a broken link?)"
        require_masks(read_dataset(tmp_path / "busi"))
