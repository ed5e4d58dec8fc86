"""The operators the MONAI Deploy applications are made of (wired by :mod:`apps.deploy.application`).

* :mod:`.inputs`: NIfTI or DICOM input, and NIfTI files as the channel-first :class:`Image` every input gives;
* :mod:`.dicom`: selected DICOM series as that image (voxel grid and affine from the DICOM geometry);
* :mod:`.inference`: the bundle's exported TorchScript model on the image, per slice for a 2D bundle;
* :mod:`.result`: the result it emits, and how to read masks and class probabilities from it;
* :mod:`.writers`: NIfTI masks, the DICOM SEG image, the classification JSON and SR text.

Bad input raises :class:`common.data.DataFormatError`: one line naming the file or folder and the problem.
"""
