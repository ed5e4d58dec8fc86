"""`make pack`: every bundle as a self-contained model-zoo package; `make zoo-verify`: the zoo's own check.

``python scripts/pack.py pack`` writes ``dist/<name>_v<version>.zip`` for every bundle in ``bundles/`` (what
a package holds: :mod:`zoo_packaging`). Every bundle is checked before anything is written; zips and large
files are written atomically.

``python scripts/pack.py verify --zoo PATH`` runs the model zoo's ``ci/verify_bundle.py``, unmodified, on
every zip in ``dist/`` (min and full modes), in an interpreter that cannot import this repository's
``common``. ``PATH`` is a model-zoo checkout or a bare git clone of it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

# zoo_packaging lies beside this file, and a script's folder is first on sys.path (the tests, run from the
# repository root, import it as scripts.zoo_packaging)
from zoo_packaging import REPO, PackError
from zoo_packaging.package import MAX_ZIP_FILE_MB, bundle_names, pack, parse_weights
from zoo_packaging.zoo_verify import DEFAULT_SCHEMA_DIR, verify_packages


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("pack", "verify", "-h", "--help"):
        argv = ["pack", *argv]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="write dist/<name>_v<version>.zip for bundles (all by default)")
    p.add_argument("bundles", nargs="*", help="bundle folder names (default: every bundle in bundles/)")
    p.add_argument("--output", type=Path, default=REPO / "dist", help="output folder (default: dist/)")
    p.add_argument(
        "--weights",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="weights of bundle NAME (default: bundles/NAME/models/model.pt); repeat per bundle",
    )
    p.add_argument(
        "--large-files-url",
        metavar="BASE",
        help="URL of the folder where large files (written beside the zips) will be uploaded",
    )
    p.add_argument(
        "--max-zip-file-mb", type=float, default=MAX_ZIP_FILE_MB, help="larger files go to large_files.yml"
    )
    v = sub.add_parser("verify", help="run the model zoo's ci/verify_bundle.py on packages")
    v.add_argument("zips", nargs="*", type=Path, help="packages (default: every zip in --dist)")
    v.add_argument("--dist", type=Path, default=REPO / "dist", help="folder of the packages (default: dist/)")
    v.add_argument("--zoo", type=Path, required=True, help="model-zoo checkout or (bare) git clone")
    v.add_argument("--rev", default="HEAD", help="revision of a git clone to take ci/ from (default: HEAD)")
    v.add_argument("--mode", nargs="+", default=["min", "full"], choices=["min", "full", "regular"])
    v.add_argument("--python", default=sys.executable, help="interpreter to run it with (default: this one)")
    v.add_argument(
        "--schema-dir", type=Path, help=f"folder with the metadata schema (default: {DEFAULT_SCHEMA_DIR})"
    )
    v.add_argument("--download-large-files", action="store_true", help="fetch large files from their URLs")
    args = parser.parse_args(argv)
    try:
        if args.command == "pack":
            names = args.bundles or bundle_names()
            pack(
                args.output,
                names,
                parse_weights(args.weights, names),
                args.large_files_url,
                args.max_zip_file_mb,
            )
        else:
            zips = args.zips or sorted(args.dist.glob("*.zip"))
            # absolute, not resolved: a venv's python is a symlink that must stay one
            python = os.path.abspath(args.python) if os.sep in args.python else shutil.which(args.python)
            if python is None or not os.path.isfile(python):
                raise PackError(f"--python {args.python}: no such interpreter")
            verify_packages(
                args.zoo,
                zips,
                args.mode,
                python=python,
                schema_dir=args.schema_dir,
                local_large_files=not args.download_large_files,
                rev=args.rev,
            )
    except PackError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
