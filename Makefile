# The two commands a newcomer runs; each sets up what it needs from nothing.
#   make site   build the leaderboard site from data/ into build/site
#   make test   run the test suite
.PHONY: site test serve setup slow clean

VENV ?= .venv
BIN = $(VENV)/bin

setup:
	@scripts/setup-env.sh

site: setup
	$(BIN)/kompakt build
	@echo "Open build/site/index.html, or run: make serve (http://127.0.0.1:8000/)"

serve: site
	$(BIN)/kompakt serve

test: setup
	@scripts/setup-browser.sh
	$(BIN)/python -m pytest

slow: setup
	$(BIN)/python -m pytest --runslow -m slow

clean:
	rm -rf build
