"""Generalised Dice + true-positive-rate loss of the MS-lesion multi-task U-Net.

A. Assadi Abolvardi, L. Hamey, K. Ho-Shon, "UNET-Based Multi-Task Architecture for Brain Lesion
Segmentation" (paper 002 in ``shared/papers``), §IV eq. 1-3::

    (1) WeightedDice(M_R, M_A) = 1 - 2 w |M_R ∩ M_A| / (w |M_R| + |M_A|),   w = 1 / |M_R|²
    (2) TPR(M_R, M_A) = 2 |M_R ∩ M_A| / (|M_R ∩ M_A| + |M_R ∩ M_A^c|)
    (3) Loss = WeightedDice(M_R, M_A) + TPR(M_R, M_A)

with ``M_R`` the reference (ground-truth) mask and ``M_A`` the network's mask.

**Eq. 1** is the generalised Dice loss of Sudre et al. (DLMIA 2017, the paper's ref. 28), which the paper
cites for it: ``GDL = 1 - 2 Σ_l w_l Σ_n r_ln p_ln / Σ_l w_l Σ_n (r_ln + p_ln)`` with ``w_l = 1 / (Σ_n
r_ln)²`` per class ``l``. With a single class the weight cancels and the loss is the plain soft Dice loss, so
the weight only "corrects the contribution of each label by the inverse of its volume" (§IV) when the sum
runs over more than one class; for the binary lesion task Sudre et al. sum over the two classes, lesion
(``p``, ``r``) and background (``1 - p``, ``1 - r``), and so does this loss. The Dice part is MONAI's
``GeneralizedDiceLoss(w_type="square")`` on those two channels.

**Eq. 2-3, as implemented.** The TPR (sensitivity) ``|M_R ∩ M_A| / |M_R|`` is a score in [0, 1] that a loss
must *lower* as it rises; eq. 3 as printed adds it, which would train the network to miss lesions, and eq. 2's
factor 2 puts it in [0, 2] (the text itself defines TPR as "the ratio of true positive voxels to the sum of
true positive and false negative voxels", without the 2). We read both as typos and implement the intended
term ``1 - TPR``:

    Loss = GDL(p, r) + λ (1 - TPR),   TPR = Σ_n p_n r_n / Σ_n r_n

with soft (probabilistic) counts: ``|M_R ∩ M_A| = Σ p r`` and ``|M_R ∩ M_A^c| = Σ (1 - p) r``, whose sum is
``|M_R| = Σ r``. ``λ = 1`` is eq. 3. Its gradient ``-λ r_n / |M_R|`` raises the lesion probability inside
the reference lesion only; the Dice term balances it against false positives.

**Empty targets.** A 64³ patch often holds no lesion voxel (``|M_R| = 0``):

* TPR is 0/0 there; by convention the patch's TPR term is **0** (nothing to detect, nothing missed) and
  gives no gradient; it is never NaN. With ``batch=False`` (default) the loss is the mean over the patches
  of ``GDL_b + λ (1 - TPR_b)``, empty patches counting with a TPR term of 0; with ``batch=True`` the counts
  are pooled over the batch and the term is 0 only when the whole batch has no lesion.
* The lesion class is absent, its weight ``1/0²`` infinite: MONAI gives an absent class the largest weight
  of the present classes, here the background's ``1/N²`` (N voxels), and the Dice part becomes
  ``Σ_n p_n / N``, the mean lesion probability: an empty patch still penalises every false positive.

**Smoothing.** MONAI's default ``smooth_nr = smooth_dr = 1e-5`` is not negligible next to the squared
weights: a class of ``N`` voxels contributes about ``w (|R| + |A|) = 2/N`` to the denominator, 7.6e-6 for a
64³ background, so the default constants would scale an empty patch's loss by about 0.43 and make it depend
on the patch size. Here ``smooth_nr = 0`` and ``smooth_dr = 1e-12``: in the two-class form at least one
class is present in every patch, so the denominator is at least ``1/N`` without smoothing (1e-12 is only a
guard, a relative change of at most ``N * 1e-12``), and a perfect prediction gives 0.

**The tissue head** (``MultiTaskUNet3D(variant="multi_output")``, four classes, softmax) needs no code of
its own: eq. 1 summed over the four classes of :data:`common.networks.TISSUE_CLASSES`, background included,
is MONAI's ``GeneralizedDiceLoss`` with the same smoothing, on a target map of class indices
``(B, 1, *spatial)``::

    {"_target_": "monai.losses.GeneralizedDiceLoss", "softmax": true, "to_onehot_y": true,
     "smooth_nr": 0.0, "smooth_dr": 1e-12}

(``include_background=True`` and ``w_type="square"`` are MONAI's defaults; ``tests/losses/test_dice_tpr.py``
checks this configuration against eq. 1.) The TPR term is for the lesion head only: §IV adds it because Dice
"is beneficial to our both tasks, but is not enough for our main task which is brain lesion segmentation".
"""

from __future__ import annotations

import torch
from monai.losses import GeneralizedDiceLoss
from torch import nn


class GeneralizedDiceTPRLoss(nn.Module):
    """``GDL(p, r) + λ (1 - TPR)`` for a binary (lesion) head: eq. 1-3 as read in the module docstring.

    Args:
        tpr_weight: λ, the weight of the ``1 - TPR`` term (1 in eq. 3; 0 leaves the generalised Dice loss).
        sigmoid: the input is a logit (the network's head) and gets a sigmoid; False: it is a probability.
        batch: pool the Dice and TPR counts (and the class volumes of the weights) over the batch instead of
            averaging per-patch losses.
        smooth_nr, smooth_dr: added to the generalised Dice numerator and denominator (see the module
            docstring for why not MONAI's 1e-5).

    ``forward(input, target)``: ``input`` ``(B, 1, *spatial)``, ``target`` the same shape with values in
    {0, 1}; returns a scalar.
    """

    def __init__(
        self,
        tpr_weight: float = 1.0,
        sigmoid: bool = True,
        batch: bool = False,
        smooth_nr: float = 0.0,
        smooth_dr: float = 1e-12,
    ):
        super().__init__()
        if tpr_weight < 0:
            raise ValueError(f"tpr_weight must be >= 0, got {tpr_weight}")
        self.tpr_weight = float(tpr_weight)
        self.sigmoid = sigmoid
        self.batch = batch
        self.dice = GeneralizedDiceLoss(
            include_background=True, w_type="square", batch=batch, smooth_nr=smooth_nr, smooth_dr=smooth_dr
        )

    def terms(self, input: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """The two terms: ``{"dice": GDL, "tpr": 1 - TPR}`` (scalars, before the weight λ)."""
        if input.ndim < 3 or input.shape[1] != 1:
            raise ValueError(f"expected input of shape (B, 1, *spatial), got {tuple(input.shape)}")
        if target.shape != input.shape:
            raise ValueError(f"target shape {tuple(target.shape)} differs from input {tuple(input.shape)}")
        # at least float32: the squared weights 1/N^2 of a 64^3 background (1.5e-11) underflow in float16
        dtype = torch.promote_types(input.dtype, torch.float32)
        input, target = input.to(dtype), target.to(dtype)
        if self.sigmoid:
            lesion, background = torch.sigmoid(input), torch.sigmoid(-input)  # sigmoid(-x) = 1 - sigmoid(x)
        else:
            lesion, background = input, 1.0 - input
        dice = self.dice(torch.cat([background, lesion], dim=1), torch.cat([1.0 - target, target], dim=1))

        reduce_axis = list(range(2, input.ndim))
        if self.batch:
            reduce_axis = [0, *reduce_axis]
        true_positives = (lesion * target).sum(dim=reduce_axis)
        positives = target.sum(dim=reduce_axis)
        has_lesion = positives > 0
        # 0/0 -> TPR term 0; the safe denominator keeps the masked branch's gradient finite (not 0 * inf)
        tpr = true_positives / torch.where(has_lesion, positives, torch.ones_like(positives))
        tpr_term = torch.where(has_lesion, 1.0 - tpr, torch.zeros_like(tpr))
        return {"dice": dice, "tpr": tpr_term.mean()}

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        terms = self.terms(input, target)
        return terms["dice"] + self.tpr_weight * terms["tpr"]


__all__ = ["GeneralizedDiceTPRLoss"]
