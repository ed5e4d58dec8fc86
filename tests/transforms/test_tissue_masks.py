"""TissueMasksd: brain mask, N4 and Atropos make CSF/GM/WM masks of the T1 (paper 002, §VII), cached on disk.

The volume is a crafted brain (:func:`tissue_phantom`): an ellipsoid with a white-matter core, a grey-matter
shell, an outer CSF layer and two CSF ventricles, T1 intensities CSF < GM < WM, a few T1-dark lesions in the
white matter, slight partial-volume blur, Gaussian noise and a smooth multiplicative bias field strong enough
that WM on the dark side is darker than GM on the bright side (so the classes overlap without N4).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from scipy import ndimage

from common.data.errors import DataFormatError
from common.transforms import TissueMasksd
from common.transforms.tissue_masks import (
    CSF,
    GM,
    WM,
    ants_geometry,
    brain_mask_of,
    segment_tissues,
)

ants = pytest.importorskip("ants")

T1_VALUES = {CSF: 0.25, GM: 0.55, WM: 0.85}
LESION_T1 = 0.4
# N4 with three fitting levels instead of four (40^3 voxels of 4 mm, a 160 mm field of view); ~1 s a run
FAST = {"n4_iterations": (50, 50, 50), "atropos_iterations": 5}


def tissue_phantom(
    shape: tuple[int, int, int] = (40, 40, 40),
    spacing: float = 4.0,
    bias: float = 0.4,
    noise: float = 0.04,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """A crafted T1 brain: ``t1`` (float32, 0 outside the brain), ``truth`` (0 bg, 1 CSF, 2 GM, 3 WM),
    ``lesion`` (bool, inside WM), ``bias`` (the multiplicative field) and ``affine`` (RAS, LPI-flipped x)."""
    rng = np.random.default_rng(seed)
    size = np.asarray(shape, dtype=np.float64)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")).astype(np.float64)
    centred = grid - (size[:, None, None, None] - 1) / 2
    semi = size * np.array([0.46, 0.42, 0.38])
    radius = np.sqrt(sum((centred[a] / semi[a]) ** 2 for a in range(3)))
    truth = np.zeros(shape, np.uint8)
    truth[radius < 1.0] = CSF
    truth[radius < 0.84] = GM
    truth[radius < 0.6] = WM
    for side in (-1, 1):  # lateral ventricles
        offset = centred.copy()
        offset[0] -= side * 0.16 * size[0]
        ventricle = sum((offset[a] / (size[a] * s)) ** 2 for a, s in enumerate((0.06, 0.16, 0.08))) < 1
        truth[ventricle] = CSF
    lesion = np.zeros(shape, bool)
    wm_core = ndimage.binary_erosion(truth == WM, iterations=3)
    candidates = np.argwhere(wm_core)
    for centre in candidates[rng.choice(len(candidates), 4, replace=False)]:
        lesion |= np.sum((grid - centre[:, None, None, None]) ** 2, axis=0) <= 2.0**2
    lesion &= truth == WM
    clean = np.zeros(shape, np.float32)
    for label, value in T1_VALUES.items():
        clean[truth == label] = value
    clean[lesion] = LESION_T1
    clean = ndimage.gaussian_filter(clean, 0.5)  # partial volume at the boundaries
    unit = centred / (size[:, None, None, None] / 2)
    field = np.exp(bias * (unit[0] + 0.5 * unit[1] - 0.5 * unit[2] ** 2)).astype(np.float32)
    t1 = clean * field + rng.normal(0.0, noise, shape).astype(np.float32)
    brain = truth > 0
    t1[~brain] = 0.0
    t1[brain] = np.maximum(t1[brain], 0.01)
    affine = np.diag([-spacing, spacing, spacing, 1.0])
    affine[:3, 3] = [80.0, -100.0, -60.0]
    return {"t1": t1.astype(np.float32), "truth": truth, "lesion": lesion, "bias": field, "affine": affine}


def four_modalities(phantom: dict[str, np.ndarray]) -> MetaTensor:
    """ISBI channel order FLAIR, MPRAGE, PD, T2; the others have other contrasts, so a wrong channel shows."""
    t1, truth = phantom["t1"], phantom["truth"]
    inverted = np.where(truth > 0, 1.2 - t1, 0.0).astype(np.float32)  # T2-like: CSF bright
    flair = np.where(truth == CSF, 0.2, inverted).astype(np.float32)
    image = np.stack([flair, t1, inverted * 0.8 + 0.1 * (truth > 0), inverted])
    return MetaTensor(
        torch.from_numpy(image),
        affine=torch.from_numpy(phantom["affine"]),
        meta={"filename_or_obj": "case01.nii.gz"},
    )


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.sum(a & b) / (np.sum(a) + np.sum(b)))


def count_ants_calls(monkeypatch) -> dict[str, int]:
    calls = {"n4": 0, "atropos": 0}
    n4, atropos = ants.n4_bias_field_correction, ants.atropos

    def counted_n4(*args, **kwargs):
        calls["n4"] += 1
        return n4(*args, **kwargs)

    def counted_atropos(*args, **kwargs):
        calls["atropos"] += 1
        return atropos(*args, **kwargs)

    monkeypatch.setattr(ants, "n4_bias_field_correction", counted_n4)
    monkeypatch.setattr(ants, "atropos", counted_atropos)
    return calls


@pytest.fixture(scope="module")
def phantom() -> dict[str, np.ndarray]:
    return tissue_phantom()


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> Path:
    """The cache of :func:`segmented`: later runs on the same image reuse its segmentation exactly.

    ITK's multithreading makes N4 differ by float rounding with the thread count (4.8e-7 between 1 and 2
    threads here), which can move a borderline voxel between two computations on a loaded machine.
    """
    return tmp_path_factory.mktemp("tissue_cache")


@pytest.fixture(scope="module")
def segmented(phantom, shared_cache) -> dict[str, object]:
    """One run of the transform on the four-modality image, no lesion mask."""
    item = {"image": four_modalities(phantom)}
    return TissueMasksd("image", cache_dir=shared_cache, **FAST)(item)


def agreement(a, b) -> float:
    return float(np.mean(np.asarray(a) == np.asarray(b)))


def test_recovers_each_tissue(phantom, segmented) -> None:
    masks = segmented["tissue"]
    assert isinstance(masks, MetaTensor) and masks.shape == (3, 40, 40, 40) and masks.dtype == torch.float32
    masks = masks.numpy().astype(bool)
    truth, healthy = phantom["truth"], ~phantom["lesion"]
    scores = {
        name: dice(masks[k - 1] & healthy, (truth == k) & healthy)
        for name, k in zip("CSF GM WM".split(), (CSF, GM, WM))
    }
    print("Dice", {k: round(v, 3) for k, v in scores.items()})
    assert min(scores.values()) > 0.8, scores
    assert not np.any(masks.sum(axis=0) > 1)  # one class per voxel
    assert np.array_equal(masks.any(axis=0), truth > 0)  # exactly the brain (zero background)


def test_n4_reduces_the_bias(phantom) -> None:
    """Inside the white matter the corrected T1 varies much less than the biased one (N4, Tustison 2010)."""
    t1, truth, lesion = phantom["t1"], phantom["truth"], phantom["lesion"]
    labels, corrected = segment_tissues(t1, truth > 0, phantom["affine"], **FAST)
    wm = ndimage.binary_erosion(truth == WM) & ~ndimage.binary_dilation(lesion)

    def cv(x):
        return float(np.std(x[wm]) / np.mean(x[wm]))

    print(f"CV in WM: biased {cv(t1):.3f}, N4 {cv(corrected):.3f}")
    assert cv(corrected) < 0.6 * cv(t1)
    without, _ = segment_tissues(t1, truth > 0, phantom["affine"], **{**FAST, "n4": False})
    healthy = ~lesion
    with_n4 = dice((labels == WM) & healthy, (truth == WM) & healthy)
    no_n4 = dice((without == WM) & healthy, (truth == WM) & healthy)
    print(f"WM Dice with N4 {with_n4:.3f}, without {no_n4:.3f}")
    assert with_n4 > no_n4


def test_negative_intensities_are_shifted_for_n4(phantom) -> None:
    """A z-scored T1 (negative inside the brain) is segmented as well: N4 needs positive values."""
    t1, truth = phantom["t1"], phantom["truth"]
    brain = truth > 0
    z = np.where(brain, (t1 - t1[brain].mean()) / t1[brain].std(), 0.0).astype(np.float32)
    labels, corrected = segment_tissues(z, brain, phantom["affine"], **FAST)
    assert corrected[brain].min() > 0
    healthy = ~phantom["lesion"]
    assert min(dice((labels == k) & healthy, (truth == k) & healthy) for k in (CSF, GM, WM)) > 0.8


def test_lesions_merge_into_white_matter(phantom, segmented, shared_cache) -> None:
    lesion = phantom["lesion"]
    without = segmented["tissue"].numpy().astype(bool)
    in_wm = float(without[WM - 1][lesion].mean())
    print(f"lesion voxels in WM without the lesion mask: {in_wm:.2f}")
    assert in_wm < 0.5  # T1-dark lesions look like GM/CSF, which is why the paper merges them
    image = four_modalities(phantom)
    label = MetaTensor(torch.from_numpy(lesion[None].astype(np.float32)), affine=image.affine)
    transform = TissueMasksd("image", lesion_key="label", cache_dir=shared_cache, **FAST)
    merged = transform({"image": image, "label": label})["tissue"].numpy()
    assert np.all(merged[WM - 1][lesion] == 1) and np.all(merged[: WM - 1][:, lesion] == 0)
    assert np.array_equal(merged[:, ~lesion], without[:, ~lesion])  # nothing else changes


def test_label_map_output(phantom, segmented, shared_cache) -> None:
    transform = TissueMasksd(
        "image", output="labels", output_key="tissue_label", cache_dir=shared_cache, **FAST
    )
    out = transform({"image": four_modalities(phantom)})
    labels = out["tissue_label"]
    assert labels.shape == (1, 40, 40, 40)
    masks = segmented["tissue"].numpy()
    expected = masks.argmax(axis=0) + 1
    expected[masks.max(axis=0) == 0] = 0
    assert np.array_equal(labels[0].numpy(), expected)  # 0 bg, 1 CSF, 2 GM, 3 WM = masks' channels + 1


def test_geometry_and_types(phantom, segmented) -> None:
    image = four_modalities(phantom)
    out = segmented["tissue"]
    assert torch.equal(out.affine, image.affine) and out.meta["filename_or_obj"] == "case01.nii.gz"
    # ANTs sees the same voxel at the same physical point (ITK's LPS = RAS with x and y negated)
    t1_ants = ants.from_numpy(phantom["t1"], **ants_geometry(phantom["affine"]))
    index = np.array([3, 7, 11])
    ras = phantom["affine"][:3, :3] @ index + phantom["affine"][:3, 3]
    lps = ants.transform_index_to_physical_point(t1_ants, index.tolist())
    np.testing.assert_allclose(lps, ras * [-1, -1, 1])
    assert t1_ants.spacing == (4.0, 4.0, 4.0)
    # a T1 alone, as numpy or torch: the same masks, the input's type back
    t1 = phantom["t1"][None]
    from_numpy = TissueMasksd("image", t1_channel=0, **FAST)({"image": t1})["tissue"]
    assert isinstance(from_numpy, np.ndarray) and from_numpy.dtype == np.float32
    from_torch = TissueMasksd("image", t1_channel=0, **FAST)({"image": torch.from_numpy(t1)})["tissue"]
    assert type(from_torch) is torch.Tensor
    assert agreement(from_numpy, from_torch.numpy()) > 0.999  # see shared_cache
    agree = agreement(from_numpy, out.numpy())  # no affine: 1 mm voxels instead of 4 mm, N4 differs slightly
    assert agree > 0.97, agree


def test_user_masks_are_used_as_given(phantom, monkeypatch) -> None:
    def no_ants(*args, **kwargs):
        raise AssertionError("ANTs must not run when the user gives tissue masks")

    monkeypatch.setattr(ants, "n4_bias_field_correction", no_ants)
    monkeypatch.setattr(ants, "atropos", no_ants)
    truth = phantom["truth"]
    image = four_modalities(phantom)
    user_masks = np.stack([truth == k for k in (CSF, GM, WM)]).astype(np.float32)
    transform = TissueMasksd("image", tissue_key="spm", **FAST)
    out = transform({"image": image, "spm": torch.from_numpy(user_masks)})
    np.testing.assert_array_equal(out["tissue"].numpy(), user_masks)
    assert torch.equal(out["tissue"].affine, image.affine)
    as_labels = TissueMasksd("image", tissue_key="spm", output="labels")
    out = as_labels({"image": image, "spm": torch.from_numpy(truth[None].astype(np.float32))})
    np.testing.assert_array_equal(out["tissue"][0].numpy(), truth)
    # the paper's merge applies to the user's masks too: SPM called the (T1-dark) lesions grey matter
    lesion = phantom["lesion"]
    spm = user_masks.copy()
    spm[:, lesion] = 0.0
    spm[GM - 1, lesion] = 1.0
    given = spm.copy()
    out = TissueMasksd("image", tissue_key="spm", lesion_key="label")(
        {"image": image, "spm": spm, "label": lesion[None].astype(np.float32)}
    )
    np.testing.assert_array_equal(out["tissue"].numpy(), user_masks)
    np.testing.assert_array_equal(spm, given)  # the item's own masks are not touched


def test_cache_skips_the_computation_and_survives_corruption(phantom, monkeypatch, tmp_path) -> None:
    calls = count_ants_calls(monkeypatch)
    # ANTsPy's atropos leaves its probability images in the temporary folder; the transform removes them
    system_tmp = tmp_path / "tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    cache = tmp_path / "tissue_cache"
    image = four_modalities(phantom)
    first = TissueMasksd("image", cache_dir=cache, **FAST)({"image": image})["tissue"]
    assert calls == {"n4": 1, "atropos": 1}
    (entry,) = cache.iterdir()  # one entry, no temporary file left beside it
    assert entry.name.startswith("tissue-") and entry.suffix == ".npz"
    second = TissueMasksd("image", cache_dir=cache, **FAST)({"image": image.clone()})["tissue"]
    assert calls == {"n4": 1, "atropos": 1}  # a new transform, the same input: read from the cache
    assert torch.equal(first, second) and torch.equal(second.affine, image.affine)
    # other parameters or another image are other entries
    TissueMasksd("image", cache_dir=cache, **{**FAST, "atropos_iterations": 3})({"image": image})
    assert calls == {"n4": 2, "atropos": 2} and len(list(cache.iterdir())) == 2
    brighter = image.clone()
    brighter[1] *= 1.01
    TissueMasksd("image", cache_dir=cache, **FAST)({"image": brighter})
    assert calls == {"n4": 3, "atropos": 3} and len(list(cache.iterdir())) == 3
    # a truncated entry, then one with flipped bytes: recomputed, rewritten and equal
    data = entry.read_bytes()
    middle = len(data) // 2
    flipped = data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 16]) + data[middle + 16 :]
    for broken in (data[:middle], flipped):
        entry.write_bytes(broken)
        again = TissueMasksd("image", cache_dir=cache, **FAST)({"image": image})["tissue"]
        assert agreement(again, first) > 0.999  # recomputed (see shared_cache)
        assert entry.read_bytes() != broken
    assert calls["atropos"] == 5
    TissueMasksd("image", cache_dir=cache, **FAST)({"image": image})
    assert calls["atropos"] == 5  # the rewritten entry is good
    assert os.listdir(system_tmp) == [] and tempfile.gettempdir() == str(system_tmp)


def test_priors_from_files(phantom, tmp_path, monkeypatch) -> None:
    """Tissue prior files on another grid (the x axis the other way round) reach Atropos on the image's."""
    truth = phantom["truth"]
    flipped = np.diag([4.0, 4.0, 4.0, 1.0])  # voxel i of the file is voxel 39 - i of the image
    flipped[:3, 3] = phantom["affine"][:3, 3] + [-4.0 * 39, 0, 0]
    paths, expected = [], []
    for name, k in zip(("csf", "gm", "wm"), (CSF, GM, WM)):
        prior = ndimage.gaussian_filter((truth == k).astype(np.float32), 1.5)
        prior *= np.linspace(0.6, 1.0, 40, dtype=np.float32)[:, None, None]  # the phantom is symmetric in x
        expected.append(prior)
        path = tmp_path / f"prior_{name}.nii.gz"
        nib.save(nib.Nifti1Image(np.ascontiguousarray(prior[::-1]), flipped), path)
        paths.append(path)
    seen = {}
    atropos = ants.atropos

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return atropos(*args, **kwargs)

    monkeypatch.setattr(ants, "atropos", spy)
    image = four_modalities(phantom)
    out = TissueMasksd("image", priors=paths, **FAST)({"image": image})["tissue"].numpy().astype(bool)
    assert len(seen["i"]) == 3 and seen["priorweight"] == 0.25
    for given, prior in zip(seen["i"], expected):
        np.testing.assert_allclose(given.numpy(), prior, atol=1e-5)
        assert given.spacing == (4.0, 4.0, 4.0)
    healthy = ~phantom["lesion"]
    scores = [dice(out[k - 1] & healthy, (truth == k) & healthy) for k in (CSF, GM, WM)]
    print("Dice with priors", [round(s, 3) for s in scores])
    assert min(scores) > 0.8
    # priors in the wrong order, initialisation only: the classes are still ordered by T1 intensity
    reordered = TissueMasksd("image", priors=paths[::-1], prior_weight=0.0, **FAST)({"image": image})
    healthy_out = reordered["tissue"].numpy().astype(bool)
    assert min(dice(healthy_out[k - 1] & healthy, (truth == k) & healthy) for k in (CSF, GM, WM)) > 0.8
    with pytest.raises(DataFormatError, match="prior_missing.nii.gz: tissue prior file not found"):
        TissueMasksd("image", priors=[paths[0], paths[1], tmp_path / "prior_missing.nii.gz"])


def test_brain_mask_without_a_constant_background(phantom) -> None:
    """Noise outside the brain: ``auto`` falls back to ANTs' get_mask, which finds the brain.

    Its threshold (the mean intensity) drops part of the outer CSF rim where the bias field darkens it.
    """
    rng = np.random.default_rng(1)
    t1 = phantom["t1"] + np.abs(rng.normal(0, 0.03, phantom["t1"].shape)).astype(np.float32) * (
        phantom["truth"] == 0
    )
    brain = brain_mask_of(t1, "auto", phantom["affine"])
    truth = phantom["truth"]
    assert dice(brain, truth > 0) > 0.9 and np.all(brain <= (truth > 0))  # none of the noise
    assert np.all(brain[truth > CSF])  # all of GM and WM
    assert np.array_equal(brain_mask_of(phantom["t1"], "auto"), phantom["truth"] > 0)
    shifted = phantom["t1"] - 3.0  # z-scored-like: constant negative background
    assert np.array_equal(brain_mask_of(shifted, "nonzero"), phantom["truth"] > 0)


def test_given_brain_mask_is_used(phantom) -> None:
    image = four_modalities(phantom)
    half = np.zeros_like(phantom["truth"], dtype=np.float32)[None]
    half[0, :20] = phantom["truth"][:20] > 0
    out = TissueMasksd("image", brain_mask_key="brain", **FAST)({"image": image, "brain": half})[
        "tissue"
    ].numpy()
    assert np.array_equal(out.any(axis=0), half[0] > 0)


def test_bad_input_names_the_file(phantom, tmp_path) -> None:
    image = four_modalities(phantom)
    with pytest.raises(DataFormatError, match=r"case01.nii.gz: has 4 channels, no T1 channel 5"):
        TissueMasksd("image", t1_channel=5)({"image": image})
    wrong = MetaTensor(torch.zeros(3, 40, 40, 39), meta={"filename_or_obj": "spm_c123.nii"})
    with pytest.raises(DataFormatError, match=r"spm_c123.nii: tissue masks have shape \(3, 40, 40, 39\)"):
        TissueMasksd("image", tissue_key="spm")({"image": image, "spm": wrong})
    codes = MetaTensor(torch.full((1, 40, 40, 40), 5.0), meta={"filename_or_obj": "labels.nii"})
    with pytest.raises(DataFormatError, match=r"labels.nii: tissue label map has codes \[5\.0\]"):
        TissueMasksd("image", tissue_key="spm")({"image": image, "spm": codes})
    empty = MetaTensor(torch.zeros(4, 40, 40, 40), meta={"filename_or_obj": "empty.nii.gz"})
    with pytest.raises(DataFormatError, match="empty.nii.gz: the brain mask has 0 voxels"):
        TissueMasksd("image")({"image": empty})
    with pytest.raises(DataFormatError, match=r"case01.nii.gz: expected a channel-first 3D image"):
        TissueMasksd("image")({"image": image[0]})
    with pytest.raises(ValueError, match="one image key"):
        TissueMasksd(["image", "flair"])


def test_geometry_noise_does_not_reach_ants() -> None:
    """Float noise in the affine (a float32 NIfTI header, DICOM positions as decimal strings) gives ANTs
    the same grid, so N4, which is sensitive to spacing, segments the same image identically."""
    affine = np.array([[-0.9375, 0, 0, 120.5], [0, 0.9375, 0, -98.25], [0, 0, 4.0, -30.0], [0, 0, 0, 1]])
    noisy = affine + np.random.default_rng(0).uniform(-2e-6, 2e-6, size=(4, 4)) * [1, 1, 1, 0]
    exact, jittered = ants_geometry(affine), ants_geometry(noisy)
    assert exact["spacing"] == jittered["spacing"] == (0.9375, 0.9375, 4.0)
    assert exact["origin"] == jittered["origin"] == (-120.5, 98.25, -30.0)
    np.testing.assert_array_equal(exact["direction"], jittered["direction"])
    np.testing.assert_array_equal(exact["direction"], np.diag([1.0, -1.0, 1.0]))  # RAS -> LPS


def test_user_masks_from_a_file(phantom, tmp_path, monkeypatch) -> None:
    """A tissue map given as a path (as the ISBI 2015 datalists carry it) is read by the transform itself."""
    monkeypatch.setattr(ants, "atropos", lambda *a, **k: pytest.fail("ANTs must not run"))
    path = tmp_path / "case01_tissues.nii.gz"
    nib.save(nib.Nifti1Image(phantom["truth"].astype(np.uint8), phantom["affine"]), path)
    out = TissueMasksd("image", tissue_key="tissue_map", output="labels")(
        {"image": four_modalities(phantom), "tissue_map": str(path)}
    )
    np.testing.assert_array_equal(out["tissue"][0].numpy(), phantom["truth"])
    with pytest.raises(DataFormatError, match="missing.nii.gz: cannot read tissue masks"):
        TissueMasksd("image", tissue_key="tissue_map")(
            {"image": four_modalities(phantom), "tissue_map": str(tmp_path / "missing.nii.gz")}
        )
