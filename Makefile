# gen3dface: two commands on a fresh machine (Python 3.10-3.12 and make):
#   make demo   - install into .venv if needed, then run the main job on the shipped sample photo
#   make test   - install into .venv if needed, then run every test and every notebook (smoke profile)
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.gen3dface-installed
PHOTO   ?= data/samples/astronaut.jpg
OUT     ?= outputs/demo
PROFILE ?= smoke
JOBS    ?= 2
# torch uses OpenMP threads; PASSIVE waiting keeps them from spinning when CPU cores are shared
# (pytest workers, notebook kernels), which otherwise slows training on 2 cores by up to 10x.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: install demo test test-fast reproduce lint clean

install: $(STAMP)

$(STAMP): pyproject.toml scripts/install.sh
	bash scripts/install.sh $(VENV)
	@touch $@

demo: $(STAMP)
	$(VENV)/bin/gen3dface demo $(PHOTO) -o $(OUT)

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -n $(JOBS) --dist loadgroup tests

test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -n $(JOBS) -m "not notebook" tests

reproduce: $(STAMP)
	$(PY) scripts/reproduce.py --profile $(PROFILE) --out outputs

lint: $(STAMP)
	$(PY) -m ruff check gen3dface tests scripts

clean:
	rm -rf outputs .pytest_cache
