# Model-zoo packages (docs/publishing_to_a_model_zoo.md).
#   make pack          dist/<name>_v<version>.zip of every bundle; weights from bundles/<name>/models/model.pt
#       PACK_BUNDLES="name ..."       only these bundles
#       WEIGHTS="name=path ..."       other weights (repeatable per bundle)
#       LARGE_FILES_URL=https://...   where files over 25 MB (written beside the zips) will be uploaded
#   make zoo-verify ZOO=/path/to/model-zoo    the zoo's own ci/verify_bundle.py, unmodified, min and full mode,
#       on every zip in dist/; ZOO is a model-zoo checkout or a (bare) git clone of it
#       ZOO_PYTHON=/path/to/python    run it with another interpreter (say a Python 3.10 venv made from the
#                                     package's metadata.json, as the zoo CI does)

DIST ?= dist
PACK_BUNDLES ?=
WEIGHTS ?=
LARGE_FILES_URL ?=
ZOO ?=
ZOO_PYTHON ?= $(PY)

.PHONY: pack zoo-verify

pack: $(STAMP)
	$(PY) scripts/pack.py pack --output $(DIST) $(PACK_BUNDLES) $(foreach w,$(WEIGHTS),--weights $(w)) \
		$(if $(LARGE_FILES_URL),--large-files-url $(LARGE_FILES_URL))

zoo-verify: $(STAMP)
	@test -n "$(ZOO)" || { echo "usage: make zoo-verify ZOO=/path/to/model-zoo (a checkout or a git clone)"; exit 2; }
	$(PY) scripts/pack.py verify --zoo $(ZOO) --dist $(DIST) --python $(ZOO_PYTHON)
