#!/usr/bin/env bash
# Bring a Debian machine to the point where `make demo` and `make test` work. Idempotent and quiet:
# a second run prints nothing and takes well under a second.
#
#   1. Debian packages (the broker, PC/SC with the virtual card reader, PostgreSQL, build tools for pyscard).
#      As root they are installed; otherwise the exact apt-get command is printed and we stop.
#   2. .venv with the project installed editable with dev extras, re-installed only when pyproject.toml
#      is newer than .venv/.installed-stamp.
#   3. tests/js/node_modules (the OpenID Connect provider and axe-core the browser tests run against), from
#      the committed package-lock.json with the machine's Node.js (20.19 or newer), only when the lock changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV=.venv
STAMP="$VENV/.installed-stamp"
PACKAGES=(mosquitto mosquitto-clients pcscd vsmartcard-vpcd libpcsclite-dev swig gcc postgresql make chromium tmux)

say() { printf 'bootstrap: %s\n' "$*"; }
die() { printf 'bootstrap: %s\n' "$*" >&2; exit 1; }

installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

missing_packages() {
    local pkg
    for pkg in "${PACKAGES[@]}"; do
        installed "$pkg" || printf '%s\n' "$pkg"
    done
    # Debian splits venv/ensurepip out of python3; a Python built elsewhere (e.g. /usr/local) has them.
    if ! command -v python3 >/dev/null; then
        printf '%s\n' python3 python3-venv
    elif ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        printf '%s\n' python3-venv
    fi
}

install_packages() {
    local missing
    command -v dpkg-query >/dev/null || die "this script needs Debian (dpkg-query not found)"
    mapfile -t missing < <(missing_packages)
    ((${#missing[@]} == 0)) && return 0
    if [[ $(id -u) -ne 0 ]]; then
        {
            say "missing Debian packages: ${missing[*]}"
            say "install them, then run this again:"
            printf '  sudo apt-get install -y --no-install-recommends %s\n' "${missing[*]}"
        } >&2
        exit 1
    fi
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

check_python() {
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "Python 3.11 or newer is needed; python3 is $(python3 -V 2>&1)"
}

install_python_packages() {
    if [[ ! -x "$VENV/bin/python" ]]; then
        say "creating $VENV"
        python3 -m venv "$VENV"
        rm -f "$STAMP"
    fi
    if [[ -f "$STAMP" && ! pyproject.toml -nt "$STAMP" ]]; then
        return 0
    fi
    say "installing the project and its pinned dependencies into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev]'
    touch "$STAMP"
}

install_test_tools() {
    local dir=tests/js stamp=tests/js/node_modules/.installed-stamp
    if [[ -f "$stamp" && ! "$dir/package-lock.json" -nt "$stamp" ]]; then
        return 0
    fi
    command -v node >/dev/null && command -v npm >/dev/null \
        || die "Node.js 20.19+ with npm is needed for the browser tests (node not found)"
    node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' \
        || die "Node.js 20.19 or newer is needed for the browser tests; node is $(node --version)"
    say "installing the browser-test tools into $dir/node_modules"
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >/dev/null
    touch "$stamp"
}

install_packages
check_python
install_python_packages
install_test_tools
