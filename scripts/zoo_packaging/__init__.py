"""Model-zoo packages of this repository's bundles; ``scripts/pack.py`` is the command line over them.

A package is ``<name>_v<version>.zip`` holding one folder ``<name>/`` (what
``python -m monai.bundle download`` unpacks), with

* the bundle's ``configs/``, ``docs/`` and ``LICENSE`` (never run outputs);
* the part of ``common`` the bundle uses, vendored as the package ``scripts`` (the zoo's convention for a
  bundle's own code): the modules the configs name, closed over imports (every import statement, those
  inside functions too), over string constants that name modules (``"common.data.brats"`` in the data
  registry) and over the submodules a lazy (PEP 562) package may load. References are rewritten
  ``common.`` -> ``scripts.`` in the configs and in the vendored code, and checked: none may be left;
* ``bundle_root`` set to ``"."``, the zoo's convention (commands run from the bundle folder;
  ``--bundle_root`` when run from elsewhere);
* ``configs/metadata.json`` without this repository's own distribution in ``required_packages_version``
  (the code it provided is vendored); every package the vendored code imports must be required there, or
  be a dependency of one that is;
* ``models/model.pt``; a file over the zoo's 25 MB limit is left out of the zip, listed in
  ``<name>/large_files.yml`` with its URL and SHA-256, and written beside the zip for upload.

Modules, in the order a package is made:

* :mod:`.closure`: which modules of ``common`` a bundle uses, and what they import;
* :mod:`.rewrite`: ``common`` renamed ``scripts`` in Python and in configs, and the check that none is left;
* :mod:`.metadata`: the package's requirements (``metadata.json`` without this repository);
* :mod:`.package`: one bundle's package, built and checked, then written atomically; every bundle at once;
* :mod:`.zoo_verify`: the model zoo's own ``ci/verify_bundle.py`` run on packages.
"""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "common"  # the shared package of this repository
VENDORED = "scripts"  # its name inside a package (the zoo's convention)


class PackError(Exception):
    """A bundle that cannot be packed: the message names the file and the problem."""


def read_json(path: Path) -> object:
    """A JSON file of a bundle; a :class:`PackError` naming it when it is not readable JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PackError(f"{path}: not readable JSON: {err}") from err
