# `make demo` and `make test` set up .venv on first use (pinned by constraints.txt),
# then run. The stamp file makes the set-up a no-op when nothing changed.
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
GPU_STAMP := $(VENV)/.installed-gpu
export YOLO_OFFLINE := 1
export YOLO_AUTOINSTALL := false
export HF_HUB_OFFLINE := 1
export RAY_AUTH_MODE ?= disabled
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup setup-gpu demo test lint bench clean chromium watermark-photos watermark-model heldout-photos

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -c constraints.txt -e '.[dev]'
	# rapidocr-onnxruntime without its opencv-python requirement (see pyproject.toml)
	$(VENV)/bin/pip install --quiet --no-deps -c constraints.txt rapidocr-onnxruntime
	touch $(STAMP)
	# the install above put the CPU onnxruntime back over onnxruntime-gpu: replace it again
	if [ -f $(GPU_STAMP) ]; then rm $(GPU_STAMP) && $(MAKE) setup-gpu; fi

# A GPU machine (README.md, GPU install): torch from PyPI already is a CUDA 13 build with
# its CUDA libraries; ONNX Runtime (NSFW, text detection) needs onnxruntime-gpu instead of
# onnxruntime. Both wheels write the same onnxruntime/ folder: the CPU one goes first.
# Ends with the report of what can run on the GPU here (exit 1 if something cannot).
setup-gpu: $(GPU_STAMP)

$(GPU_STAMP): $(STAMP) constraints-gpu.txt
	$(VENV)/bin/pip uninstall --quiet -y onnxruntime onnxruntime-gpu
	$(VENV)/bin/pip install --quiet -c constraints.txt -c constraints-gpu.txt 'onnxruntime-gpu[cuda,cudnn]'
	$(VENV)/bin/python -m steps.gpu_report
	touch $(GPU_STAMP)

demo: $(STAMP)
	$(VENV)/bin/python -m demo.run

# The tests run inside a private network namespace (loopback only) so that Ray and
# the test HTTP servers never listen beyond this machine; see scripts/netns_run.sh.
test: $(STAMP) chromium
	scripts/netns_run.sh $(VENV)/bin/python -m pytest -q $(PYTEST_ARGS)

# The HTML report test renders in headless Chromium (Debian's `chromium`). The tests run
# offline in a network namespace, so install it here first: with apt-get as root (or sudo).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else \
	    echo "chromium missing and not root: install Debian's chromium (the HTML report test needs it)"; exit 1; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium; }

# Training the watermark model (not needed to run or test anything): real photos and
# textures from Debian's desktop-background packages, then `python -m filter_dev.watermark_train`.
WATERMARK_PHOTO_PACKAGES := gnome-backgrounds lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 mate-backgrounds
watermark-photos:
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(WATERMARK_PHOTO_PACKAGES)

# The filter-quality benches' held-out photos (filter_dev/heldout_photos.py); no test reads
# them, so CI does not install them.
HELDOUT_PHOTO_PACKAGES := opencv-doc gcompris-qt-data
heldout-photos:
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(HELDOUT_PHOTO_PACKAGES)

watermark-model: $(STAMP) watermark-photos
	$(VENV)/bin/python -m filter_dev.watermark_train

# ruff's configuration is in pyproject.toml; CI runs this before the tests.
lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(VENV)/bin/python bench/pipeline_throughput.py

clean:
	rm -rf $(VENV) build out
