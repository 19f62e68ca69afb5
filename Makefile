# gen3dface: two commands on a fresh machine (Python 3.11 or 3.12, and make):
#   make demo   - install into .venv if needed, then run the main job on the shipped sample photo
#   make test   - install into .venv if needed, then lint, run every test and every notebook (smoke profile)
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

.PHONY: install demo test test-fast reproduce student lint format clean

install: $(STAMP)

$(STAMP): pyproject.toml scripts/install.sh
	bash scripts/install.sh $(VENV)
	@touch $@

demo: $(STAMP)
	$(VENV)/bin/gen3dface demo $(PHOTO) -o $(OUT)

test: $(STAMP) lint
	HF_HUB_OFFLINE=1 $(PY) -m pytest -n $(JOBS) --dist loadgroup tests

test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -n $(JOBS) -m "not notebook" tests

reproduce: $(STAMP)
	$(PY) scripts/reproduce.py --profile $(PROFILE) --out outputs

# solution-free copies of every notebook (checker cells kept) for a class: outputs/student/*.ipynb (docs/teaching.md)
student: $(STAMP)
	$(PY) -m gen3dface.teaching.student --out outputs/student

# one linter and one formatter (ruff, pinned in pyproject.toml; line length 110): `make format` fixes
lint: $(STAMP)
	$(PY) -m ruff check gen3dface tests scripts
	$(PY) -m ruff format --check gen3dface tests scripts

format: $(STAMP)
	$(PY) -m ruff format gen3dface tests scripts
	$(PY) -m ruff check --fix gen3dface tests scripts

clean:
	rm -rf outputs .pytest_cache
