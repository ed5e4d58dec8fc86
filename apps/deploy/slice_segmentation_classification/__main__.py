"""Entry point: ``python -m apps.deploy.slice_segmentation_classification -i INPUT -o OUTPUT -m MODEL.ts``.

Also what a MONAI Application Package built from this folder runs.
"""

from apps.deploy.slice_segmentation_classification.app import main

if __name__ == "__main__":
    main()
