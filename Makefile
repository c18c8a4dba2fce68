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

test: setup
	@scripts/setup-browser.sh
	$(BIN)/python -m pytest

# llama-cpp-python compiles llama.cpp (about five minutes); the wheel is cached in ~/.cache/kompakt/wheels.
# Without it the llama.cpp tests are skipped (they say why) and GGUF variants are not timed.
llamacpp: setup
	PYTHON=$(BIN)/python scripts/build-llamacpp.sh

slow: setup
	$(BIN)/python -m pytest --runslow -m slow -rP

clean:
	rm -rf build
