"""Networks of the bundles: one module per paper architecture; blocks one concept per module in ``blocks``.

Every bundle network is a :class:`MultiHeadNetwork`: a dict of named heads in training (through
:class:`TrainingHeads`), one tensor ``pred`` at inference.
"""

from .attention_r2unet import (
    APRAttentionGate,
    AttentionPreActivationResidual,
    AttentionR2UNet,
    PreActivationConvBlock,
    PreActivationResidualUnit,
)
from .mmran import MMRAN
from .multihead import MultiHeadNetwork, TrainingHeads, heads_to_pred
from .multitask_unet3d import TISSUE_CLASSES, MultiTaskUNet3D
from .resnest import (
    RESNEST_KEY_SCHEMES,
    ResNeSAt,
    ResNeSt,
    ResNeStBottleneck,
    ResNeStCheckpointReport,
    load_resnest_checkpoint,
)
from .two_stage import STAGES, TwoStageClassifier
from .unetpp_edge import EDGE_BRANCHES, LowFrequencyFeatureModule, UNetPlusPlusEdge, strip_edge_branch

__all__ = [
    "EDGE_BRANCHES",
    "MMRAN",
    "RESNEST_KEY_SCHEMES",
    "STAGES",
    "TISSUE_CLASSES",
    "APRAttentionGate",
    "AttentionPreActivationResidual",
    "AttentionR2UNet",
    "LowFrequencyFeatureModule",
    "MultiHeadNetwork",
    "MultiTaskUNet3D",
    "PreActivationConvBlock",
    "PreActivationResidualUnit",
    "ResNeSAt",
    "ResNeSt",
    "ResNeStBottleneck",
    "ResNeStCheckpointReport",
    "TrainingHeads",
    "TwoStageClassifier",
    "UNetPlusPlusEdge",
    "heads_to_pred",
    "load_resnest_checkpoint",
    "strip_edge_branch",
]
