"""Entry point: ``python -m apps.deploy.image_classification -i INPUT -o OUTPUT -m MODEL.ts``.

Also what a MONAI Application Package built from this folder runs.
"""

from apps.deploy.image_classification.app import main

if __name__ == "__main__":
    main()
