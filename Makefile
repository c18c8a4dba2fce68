# The commands a newcomer runs; each sets up what it needs from nothing.
#   make demo   measure the embedded model's variants on a quick suite, build the site with them
#   make site   build the leaderboard site from data/ into build/site
#   make test   run the test suite
.PHONY: demo site test serve setup slow llamacpp clean

VENV ?= .venv
BIN = $(VENV)/bin

setup:
	@scripts/setup-env.sh
	@scripts/setup-frontend.sh

demo:
	@scripts/demo.sh

site: setup
	$(BIN)/kompakt build
	@echo "Open build/site/index.html, or run: make serve (http://127.0.0.1:8000/)"

serve: site
	$(BIN)/kompakt serve

# The llama.cpp backend is tested too: llama-cpp-python is built once (about five minutes, the wheel cached in
# ~/.cache/kompakt/wheels) when it is missing; a failed build stops here and says why (KOMPAKT_LLAMACPP=skip skips it).
test: setup
	@scripts/setup-browser.sh
	@PYTHON=$(BIN)/python scripts/build-llamacpp.sh
	$(BIN)/python -m pytest

# llama-cpp-python alone (make test runs this first). Without it GGUF variants are not timed.
llamacpp: setup
	PYTHON=$(BIN)/python scripts/build-llamacpp.sh

slow: setup
	$(BIN)/python -m pytest --runslow -m slow -rP

clean:
	rm -rf build
