# The two commands of the README. Each sets up what is missing first: a virtual
# environment in .venv with the pinned packages (about 3 minutes, once).
#   make book   build the book and serve it at http://localhost:8000
#   make test   run every test (the chapters included); CI runs exactly this

VENV := .venv
PYTHON := $(VENV)/bin/python
READY := $(VENV)/.installed

.PHONY: book test install

book: $(READY)
	$(VENV)/bin/jupyter-book build .
	@echo "serving the book at http://localhost:8000 (Ctrl-C stops)"
	$(PYTHON) -m http.server --directory _build/html 8000

test: $(READY)
	$(PYTHON) -m pytest -n 2

install: $(READY)

$(READY): requirements.txt pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install --quiet torch==2.13.0
	$(PYTHON) -m pip install --quiet -r requirements.txt
	$(PYTHON) -m pip install --quiet --no-deps -e .
	touch $@
