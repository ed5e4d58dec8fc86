# MONAI Label consumer (docs/monai_label.md): its own environment, because monailabel 0.8.5 needs
# pydicom 2, numpy 1 and a torchvision, none of which the main environment wants.
#   make label-env    creates .venv-label: Python 3.11, torch (CPU build) first, monailabel 0.8.5, this repository
#   make test-label   the MONAI Label tests (real servers over HTTP): tests/consumers/test_monai_label.py
#
# monailabel is installed with --no-deps and its requirements are listed below, less three:
#   sam2      an sdist that compiles a CUDA extension and pulls its own torch into the build environment;
#             the servers run with `--conf sam2 false` and never import it
#   mlflow    experiment tracking, off unless a training request asks for it
#   openslide whole-slide pathology images; these bundles read NIfTI, PNG and MAT files
# Every pip call takes a constraints file that holds torch at the installed version, so that no requirement
# (torchvision pins one torch release exactly) can swap the CPU build for a CUDA one.

LABEL_PYTHON ?= $(shell command -v python3.11 || command -v python3)
LABEL_VENV ?= .venv-label
LABEL_TORCH_SPEC ?= torch==2.13.0
LABEL_TORCH_INDEX ?=
LABEL_PY := $(LABEL_VENV)/bin/python
LABEL_STAMP := $(LABEL_VENV)/.installed
LABEL_CONSTRAINTS := $(LABEL_VENV)/constraints.txt
LABEL_SHIM := apps/monailabel/torchvision_without_ops.py

# the pins that make monailabel 0.8.5 import (pydicom 3 and numpy 2 break it and its DICOM clients)
LABEL_PINS := "numpy>=1.26,<2" "pydicom>=2.4.4,<3" "pynetdicom>=2.0.2,<3" "dicomweb-client[gcp]>=0.59.1,<0.60"
# monailabel 0.8.5's own requirements (its wheel's METADATA), less sam2, mlflow and openslide (above)
LABEL_DEPS := "monai[fire,gdown,ignite,itk,lmdb,nibabel,pillow,psutil,skimage,tensorboard,torchvision,tqdm]>=1.4.0" \
	"uvicorn>=0.29.0" "pydantic>=2.7.0" "pydantic-settings>=2.2.1" "python-dotenv>=1.0.1" "fastapi>=0.110.2" \
	"python-multipart>=0.0.9" "httpx>=0.27.0" "schedule>=1.2.1" "timeloop>=1.0.2" "expiringdict>=1.2.2" \
	"expiring_dict>=1.1.0" "cachetools>=5.3.3" "watchdog>=4.0.0" "pydicom-seg>=0.4.1" "pynrrd>=1.0.0" \
	"numpymaxflow>=0.0.7" "girder-client>=3.2.3" "ninja>=1.11.1.1" "einops>=0.7.0" "pyyaml>=6.0.1" \
	"filelock>=3.11.0" "passlib>=1.7.4" "pyjwt>=2.8.0" "bcrypt>=4.1.2" "shapely>=2.0.4" "requests>=2.31.0" \
	"requests-toolbelt>=1.0.0" "urllib3>=2.2.1" scikit-learn scipy "google-auth>=2.29.0"
LABEL_PIP := $(LABEL_PY) -m pip install --quiet -c $(LABEL_CONSTRAINTS)

.PHONY: label-env test-label

$(LABEL_PY):
	$(LABEL_PYTHON) -m venv $(LABEL_VENV)
	$(LABEL_PY) -m pip install --quiet --upgrade pip

$(LABEL_STAMP): $(LABEL_PY) pyproject.toml mk/label.mk $(LABEL_SHIM)
	@$(LABEL_PY) -c "import torch" 2>/dev/null && echo "torch already installed: $$($(LABEL_PY) -c 'import torch; print(torch.__version__)')" \
		|| $(LABEL_PY) -m pip install --quiet $(if $(LABEL_TORCH_INDEX),--index-url $(LABEL_TORCH_INDEX)) "$(LABEL_TORCH_SPEC)"
	$(LABEL_PY) -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > $(LABEL_CONSTRAINTS)
	$(LABEL_PIP) $(LABEL_PINS) $(LABEL_DEPS) -e ".[fast]" "pytest>=8,<10"
	$(LABEL_PIP) --no-deps "monailabel==0.8.5"
	@# PyPI's torchvision is built against a CUDA torch: beside the CPU build its compiled ops cannot load,
	@# and without them it does not import (monailabel imports it). The hook declares the two operators that
	@# torchvision's import needs, and only when its compiled library cannot load.
	@site=$$($(LABEL_PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])"); \
	if [ -f $$site/_torchvision_without_ops.pth ] || ! $(LABEL_PY) -c "import torchvision" 2>/dev/null; then \
		cp $(LABEL_SHIM) $$site/_torchvision_without_ops.py; \
		echo "import _torchvision_without_ops" > $$site/_torchvision_without_ops.pth; \
		echo "torchvision: compiled ops unavailable beside this torch build; import hook installed"; fi
	$(LABEL_PY) -c "import monailabel, monai, torch, torchvision, common; \
		import monailabel.tasks.infer.bundle, monailabel.tasks.train.bundle; \
		print('monailabel', monailabel.__version__, 'monai', monai.__version__, 'torch', torch.__version__)"
	@touch $(LABEL_STAMP)

label-env: $(LABEL_STAMP)

test-label: $(LABEL_STAMP)
	$(LABEL_PY) -m pytest -m label tests/consumers/test_monai_label.py
