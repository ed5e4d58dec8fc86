"""The BraTS bundle's training settings follow paper 001 (§3.3-3.6), checked through its own configs.

* the loss is eq. 9: binary cross-entropy plus a Dice with squared terms pooled over the batch;
* the learning rate decays as (1 - epoch / epochs)^0.9 (Myronenko 2018, the paper's ref. 24), cosine on
  request;
* each batch holds slices of several cases;
* validation and evaluation score the label map on the input's own grid: the network sees a centre crop
  (144 x 176 by default) and the prediction is restored to the input grid before scoring, so specificity
  counts the real background and tumour outside the crop counts as missed.
"""

import nibabel as nib
import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor

from common.metrics import brats_region_handlers

from .conftest import configs

BUNDLE = "attention_r2unet_brats_segmentation"
SHAPE = (64, 64, 8)
CROP = (48, 56)


def bundle_parser(root, **overrides) -> ConfigParser:
    folder = configs(BUNDLE)
    parser = ConfigParser()
    parser.read_config([str(folder / "train.json"), str(folder / "smoke_test.json")])
    parser["bundle_root"] = str(root)
    for key, value in overrides.items():
        parser[key] = value
    return parser


def test_region_loss_is_eq_9(tmp_path):
    loss = bundle_parser(tmp_path).get_parsed_content("region_loss")
    torch.manual_seed(0)
    logits = torch.randn(3, 1, 8, 8)
    target = (torch.rand(3, 1, 8, 8) > 0.7).float()
    target[1] = 0  # an empty slice: pooled over the batch, it does not pull the Dice to zero
    p = torch.sigmoid(logits)
    dice = 2 * (p * target).sum() / ((p**2).sum() + (target**2).sum())
    bce = torch.nn.functional.binary_cross_entropy(p, target)
    torch.testing.assert_close(loss(logits, target), bce + 1 - dice, rtol=1e-4, atol=1e-4)


def test_learning_rate_decays_as_poly_0_9_or_cosine(tmp_path):
    epochs, lr = 10, 1e-4
    for schedule in ("poly", "cosine"):
        overrides = {"epochs": epochs, "learning_rate": lr, "lr_scheduler": f"@lr_schedulers#{schedule}"}
        parser = bundle_parser(tmp_path, **overrides)
        scheduler = parser.get_parsed_content("lr_scheduler")
        optimizer = parser.get_parsed_content("optimizer")
        rates = []
        for _ in range(epochs):
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        e = np.arange(epochs)
        poly, cosine = (1 - e / epochs) ** 0.9, (1 + np.cos(np.pi * e / epochs)) / 2
        expected = lr * (poly if schedule == "poly" else cosine)
        np.testing.assert_allclose(rates, expected, rtol=1e-6)


def test_each_batch_mixes_cases(tmp_path):
    parser = bundle_parser(tmp_path, device="$torch.device('cpu')")
    loader = parser.get_parsed_content("train#dataloader")
    batch = next(iter(loader))
    slices = parser.get_parsed_content("batch_size")
    assert batch["image"].shape[0] == slices
    assert len(set(batch["case"])) >= 2, batch["case"]


def write_case(folder):
    """Four modalities and a label with one tumour inside the crop and one in a corner outside it."""
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    label = np.zeros(SHAPE, np.uint8)
    label[28:36, 28:36, 2:6] = 2  # oedema around
    label[30:34, 30:34, 3:5] = 4  # enhancing core (BraTS 2020 code)
    label[0:4, 0:4, 2:6] = 2  # outside the 48 x 56 centre crop
    case = {"case": "grid_case", "layout": "brats2020"}
    rng = np.random.default_rng(0)
    for modality in ("flair", "t1", "t1ce", "t2"):
        path = folder / f"grid_case_{modality}.nii.gz"
        nib.save(nib.Nifti1Image(rng.random(SHAPE, dtype=np.float32), affine), path)
    case["image"] = [str(folder / f"grid_case_{m}.nii.gz") for m in ("flair", "t1", "t1ce", "t2")]
    nib.save(nib.Nifti1Image(label, affine), folder / "grid_case_seg.nii.gz")
    case["label"] = str(folder / "grid_case_seg.nii.gz")
    return case, label


def test_prediction_is_scored_on_the_input_grid(tmp_path):
    parser = bundle_parser(tmp_path, slice_size=list(CROP))
    case, label = write_case(tmp_path)
    item = parser.get_parsed_content("validate#preprocessing")(case)
    assert tuple(item["image"].shape) == (4, *CROP, SHAPE[2])
    assert tuple(item["label"].shape) == (1, *SHAPE)  # the label keeps its grid
    # a perfect prediction inside the crop: every head's logit +10 on the whole tumour, -10 elsewhere
    inside = torch.zeros((1, *CROP, SHAPE[2]))
    x0, y0 = (SHAPE[0] - CROP[0]) // 2, (SHAPE[1] - CROP[1]) // 2
    inside[0] = torch.as_tensor(label[x0 : x0 + CROP[0], y0 : y0 + CROP[1]] > 0).float()
    logits = (inside * 20 - 10).repeat(4, 1, 1, 1)
    # the network's output carries the image's meta data and transform trace, as in the evaluator
    image = item["image"]
    logits = MetaTensor(logits, meta=image.meta, applied_operations=image.applied_operations)
    output = parser.get_parsed_content("validate#postprocessing")({**item, "pred": logits})
    pred = np.asarray(output["pred_label"])
    assert pred.shape == (1, *SHAPE)
    expected = np.zeros(SHAPE, bool)
    expected[x0 : x0 + CROP[0], y0 : y0 + CROP[1]] = label[x0 : x0 + CROP[0], y0 : y0 + CROP[1]] > 0
    np.testing.assert_array_equal(pred[0] > 0, expected)
    # the corner tumour is missed: whole-tumour Dice and sensitivity below 1, by the independent count
    found, total = int(expected.sum()), int((label > 0).sum())
    handlers = brats_region_handlers(["dice", "sensitivity"], regions=["wt"], save_details=False)
    values = {}
    for name, handler in handlers.items():
        metric = handler.metric_fn
        metric(y_pred=[output["pred_label"]], y=[output["label"]])
        values[name] = float(metric.aggregate())
    np.testing.assert_allclose(values["dice_wt"], 2 * found / (found + total), rtol=1e-6)
    np.testing.assert_allclose(values["sensitivity_wt"], found / total, rtol=1e-6)
    assert found < total
