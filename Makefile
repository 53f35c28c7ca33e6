# The two set-up commands (see README): `make app` and `make test`.
PY ?= python3

.PHONY: app test install install-dev browser lint bench

install:
	$(PY) -m pip install -q -r requirements.txt

install-dev:
	$(PY) -m pip install -q -r requirements-dev.txt

# Debian's chromium for the real-browser tests in tests/test_browser.py (Playwright cannot download browsers here).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; }

app: install
	$(PY) -m streamlit run streamlit_app.py

test: install-dev browser
	$(PY) -m ruff check .
	$(PY) -m pytest

lint:
	$(PY) -m ruff check .

bench: install-dev
	$(PY) bench/run_all.py
