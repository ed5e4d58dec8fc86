"""Entry point: ``python -m apps.deploy.lesion_segmentation -i INPUT -o OUTPUT -m MODEL.ts``.

Also what a MONAI Application Package built from this folder runs.
"""

from apps.deploy.lesion_segmentation.app import main

if __name__ == "__main__":
    main()
