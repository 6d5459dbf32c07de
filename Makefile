# Two commands do everything on a fresh machine:
#   make demo   - install, then run the shipped model on the shipped sample face (+ the validation set if present)
#   make test   - install, then run the test suite
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
DATA ?= ../shared/data
OUT ?= demo_out

.PHONY: setup demo test lint onnx benchmark

setup:
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[dev,demo]"

demo: setup
	lightmark predict src/lightmark/assets/sample_face.jpg --out $(OUT)/solution.txt --json $(OUT)/sample_face.json --vis $(OUT)
	@if [ -d $(DATA)/aflw2000/val ]; then \
		lightmark evaluate --data $(DATA)/aflw2000/val --json $(OUT)/val_report.json --plots $(OUT)/val_plots; \
	else echo "($(DATA)/aflw2000/val not found: skipping the validation run)"; fi

test: setup
	$(PYTHON) -m ruff check src tests
	$(PYTHON) -m pytest -q

lint:
	ruff check src tests && ruff format --check src tests

# Regenerate the shipped models' ONNX twins (run after replacing a .pt; the Predictor ignores a stale twin).
onnx:
	for t in protocol mixed; do \
		lightmark export --format onnx --model src/lightmark/weights/lightmark_$$t.pt \
			--out src/lightmark/weights/lightmark_$$t.onnx || exit 1; \
	done

# Speed figures of the shipped model (torch, ONNX Runtime, end to end; dlib with `pip install -e ".[dlib]"`).
benchmark:
	lightmark benchmark --json $(OUT)/benchmark.json
