# Two commands: `make run` (open the app on sample data) and `make test`.
# Both install what they need: Debian packages for Qt/Xvfb (as root, or with sudo) and .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYINSTALLER := $(VENV)/.pyinstaller-stamp
# Qt's xcb platform, OpenGL for napari's canvas, and Xvfb for tests on machines without a screen
APT_PACKAGES := xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-cursor0 \
	libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-xkb1 libxkbcommon-x11-0 libgl1 \
	libegl1 libgl1-mesa-dri libfontconfig1 libdbus-1-3
# a real DICOMweb server for the tests (and `annotator orthanc serve`)
TEST_APT_PACKAGES := orthanc orthanc-dicomweb

.PHONY: run test bench bundle bundle-test bundle-check system-deps clean

system-deps:
	@missing=$$(for p in $(APT_PACKAGES) $(EXTRA_APT); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ] && command -v apt-get >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
		echo "installing Debian packages:" $$missing; \
		$$sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive \
			$$sudo apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $(STAMP)

$(PYINSTALLER): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt pyinstaller==6.22.3
	touch $(PYINSTALLER)

run: system-deps $(STAMP)
	$(BIN)/annotator-app --sample hippocampus

# Three test processes side by side (pytest-xdist), each network on one thread: the tests
# wait on servers, windows and child processes much of their time, so on two cores two
# processes left about a fifth of the CPUs' time idle (961 s), three 3 % (796 s, 753 tests).
test: EXTRA_APT = $(TEST_APT_PACKAGES)
test: system-deps $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 3 --dist worksteal

bench: $(STAMP)
	mkdir -p bench-results
	$(BIN)/annotator bench graphcut --json bench-results/graphcut.json --md bench-results/graphcut.md
	$(BIN)/annotator bench app --json bench-results/app.json --md bench-results/app.md
	$(BIN)/annotator bench click --json bench-results/click.json --md bench-results/click.md
	$(BIN)/annotator bench robot --json bench-results/robot.json --md bench-results/robot.md --plot bench-results/robot.png

# the desktop app as one folder (PyInstaller: it reads binaries with binutils' objdump) and a
# Linux archive with an installer script (compressed by pigz, gzip on every core)
bundle: EXTRA_APT = binutils pigz
bundle: system-deps $(PYINSTALLER)
	start=$$(date +%s); $(BIN)/pyinstaller --noconfirm --log-level WARN --distpath dist --workpath build/pyinstaller \
		packaging/annotator.spec && echo $$(( $$(date +%s) - start )) > dist/build-seconds.txt
	packaging/linux/make-archive.sh dist

# build it, then check it: the frozen app's self-test and a screenshot with no network and no
# Python on PATH, its installer, and its launch time
bundle-test: bundle
	$(MAKE) bundle-check

bundle-check: $(STAMP)
	$(BIN)/python -m pytest -m bundle tests/test_bundle.py
	$(BIN)/annotator bench bundle --quick --json dist/bundle.json --md dist/bundle.md

clean:
	rm -rf $(VENV) build dist *.egg-info
