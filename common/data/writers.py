"""MONAI image writers that write atomically, for ``SaveImaged(writer=...)``."""

from __future__ import annotations

from monai.data import ITKWriter, NibabelWriter, PILWriter

from .atomic import atomic_output


class _AtomicWriteMixin:
    def write(self, filename, verbose: bool = False, **kwargs):  # noqa: D401 - MONAI's writer API
        with atomic_output(filename) as tmp:
            super().write(str(tmp), verbose=verbose, **kwargs)


class AtomicNibabelWriter(_AtomicWriteMixin, NibabelWriter):
    """``NibabelWriter`` that writes to a temporary file and renames it into place."""


class AtomicPILWriter(_AtomicWriteMixin, PILWriter):
    """``PILWriter`` that writes to a temporary file and renames it into place."""


class AtomicITKWriter(_AtomicWriteMixin, ITKWriter):
    """``ITKWriter`` that writes to a temporary file and renames it into place."""


def atomic_writer_for(output_ext: str) -> type:
    """The atomic writer class for an output extension (".nii.gz", ".nii", ".png", ".nrrd", ".mha", ...)."""
    ext = output_ext.lower()
    if ext in (".nii", ".nii.gz"):
        return AtomicNibabelWriter
    if ext in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"):
        return AtomicPILWriter
    return AtomicITKWriter
