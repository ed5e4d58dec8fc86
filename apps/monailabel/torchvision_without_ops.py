"""Lets torchvision import beside a torch build whose ABI its compiled operators do not match.

PyPI's Linux torchvision wheels are built against PyPI's CUDA torch. Beside the CPU build of torch their
compiled library (``torchvision/_C.so``) cannot load; torchvision then runs without its operators (nms, roi
align, ...) but its import still registers fake kernels for ``torchvision::nms`` and ``torchvision::qnms``,
which fails when the operators were never declared. MONAI Label imports torchvision for pure-Python helpers
(``torchvision.utils.make_grid``), so the label environment (``make label-env``) installs this module with a
``.pth`` line: it waits for the first ``import torchvision``, tries the compiled library, and only when that
cannot load declares the two operators' schemas (no kernels: calling them raises, as any missing operator
does). Nothing else is changed, and nothing happens in an environment whose torchvision loads.
"""

import importlib.abc
import importlib.util
import os
import sys

# schemas as torchvision's C++ sources declare them
_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_LIBRARIES = []  # a torch.library.Library drops its declarations when it is garbage-collected


def declare_missing_ops(package_dir: str) -> bool:
    """Declare torchvision's nms/qnms schemas if its compiled library in `package_dir` cannot load."""
    import torch

    library = os.path.join(package_dir, "_C.so")
    if os.path.exists(library):
        try:
            torch.ops.load_library(library)
            return False
        except OSError:
            pass
    if hasattr(torch.ops.torchvision, "nms"):
        return False
    lib = torch.library.Library("torchvision", "FRAGMENT")
    for schema in _SCHEMAS:
        lib.define(schema)
    _LIBRARIES.append(lib)
    return True


class _FirstImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "torchvision":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("torchvision")
        if spec is not None and spec.submodule_search_locations:
            declare_missing_ops(list(spec.submodule_search_locations)[0])
        return spec


if not any(isinstance(finder, _FirstImport) for finder in sys.meta_path):
    sys.meta_path.insert(0, _FirstImport())
