# MONAI Deploy consumer (apps/deploy, docs/monai_deploy.md): its own environment, because the MONAI Deploy
# App SDK needs pydicom 3, highdicom and Holoscan, none of which the main environment carries.
#   make deploy-env     create .venv-deploy (Python 3.11; torch first, then the SDK, the DICOM stack, this repo)
#   make test-deploy    the MONAI Deploy tests (tests/consumers/test_deploy.py, marker `deploy`), in-process
#   make deploy-package DEPLOY_APP=volume_segmentation DEPLOY_MODEL=path/model.ts DEPLOY_TAG=name:version
#                       build a MONAI Application Package (container) with `monai-deploy package`; needs Docker
# TORCH_SPEC / TORCH_INDEX come from the Makefile (CPU torch by default).

DEPLOY_PYTHON ?= $(shell command -v python3.11 || command -v python3)
DEPLOY_VENV ?= .venv-deploy
DEPLOY_PY := $(DEPLOY_VENV)/bin/python
DEPLOY_STAMP := $(DEPLOY_VENV)/.installed
# The SDK 4.0.0 wheel leaves Holoscan unpinned, but its release notes pin Holoscan and holoscan-cli below 4.3:
# holoscan-cli 4.3 deprecated MAP packaging and 5.x no longer installs the `monai-deploy` command.
DEPLOY_SDK_SPEC ?= monai-deploy-app-sdk==4.0.0
DEPLOY_HOLOSCAN_SPEC ?= "holoscan-cu13>=4.2,<4.3" "holoscan-cli>=4.2,<4.3"
# what the SDK's DICOM operators import (all optional imports in the SDK, so pip would not pull them)
DEPLOY_DICOM_SPEC ?= "pydicom>=3,<4" "highdicom>=0.23,<0.29" "SimpleITK>=2.3,<3"
DEPLOY_APP ?= volume_segmentation
DEPLOY_MODEL ?= bundles/attention_r2unet_brats_segmentation/models/model.ts
DEPLOY_TAG ?= $(subst _,-,$(DEPLOY_APP)):0.1.0
DEPLOY_LIB := build/deploy_lib
# the model and its ONNX export, made ahead so that the container does not export at every start
DEPLOY_MODELS := build/deploy_model

.PHONY: deploy-env test-deploy deploy-package

$(DEPLOY_PY):
	$(DEPLOY_PYTHON) -m venv $(DEPLOY_VENV)
	@echo '*' > $(DEPLOY_VENV)/.gitignore
	$(DEPLOY_PY) -m pip install --quiet --upgrade pip

$(DEPLOY_STAMP): $(DEPLOY_PY) pyproject.toml mk/deploy.mk
	@$(DEPLOY_PY) -c "import torch" 2>/dev/null && echo "torch already installed: $$($(DEPLOY_PY) -c 'import torch; print(torch.__version__)')" \
		|| $(DEPLOY_PY) -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	$(DEPLOY_PY) -m pip install --quiet "$(DEPLOY_SDK_SPEC)" $(DEPLOY_HOLOSCAN_SPEC) $(DEPLOY_DICOM_SPEC) \
		"pytest>=8,<10" -e ".[fast]"
	$(DEPLOY_PY) -c "import monai.deploy.core, monai.deploy.operators.dicom_seg_writer_operator, highdicom, common; \
		import monai, monai.deploy, pydicom, torch; \
		print('deploy env: MONAI', monai.__version__, '| Deploy SDK', monai.deploy.__version__, \
		'| pydicom', pydicom.__version__, '| torch', torch.__version__)"
	@touch $(DEPLOY_STAMP)

deploy-env: $(DEPLOY_STAMP)

test-deploy: $(DEPLOY_STAMP)
	$(DEPLOY_PY) -m pytest -m deploy tests/consumers/test_deploy.py

# The packaged app imports `apps.deploy` and `common`: they are staged into one folder that `--add` puts on
# the container's PYTHONPATH; the app folder's requirements.txt lists the rest.
deploy-package: $(DEPLOY_STAMP)
	rm -rf $(DEPLOY_LIB) && mkdir -p $(DEPLOY_LIB)
	cp -r common apps $(DEPLOY_LIB)/
	find $(DEPLOY_LIB) -name __pycache__ -prune -exec rm -rf {} +
	rm -rf $(DEPLOY_MODELS) && mkdir -p $(DEPLOY_MODELS) && cp $(DEPLOY_MODEL) $(DEPLOY_MODELS)/model.ts
	$(DEPLOY_PY) -m apps.deploy.export_onnx $(DEPLOY_MODELS)/model.ts
	$(DEPLOY_VENV)/bin/monai-deploy package apps/deploy/$(DEPLOY_APP) \
		--config apps/deploy/$(DEPLOY_APP)/app.yaml --models $(DEPLOY_MODELS) --add $(DEPLOY_LIB) \
		--platform x86_64 --tag $(DEPLOY_TAG) -l DEBUG
