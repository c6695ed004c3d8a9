# Sourced by scripts/dev and scripts/test: make .venv with Python 3.11+ and install the project.
ensure_venv() {
  local extras=$1 python=${PYTHON:-python3}
  if [ ! -x .venv/bin/python ]; then
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "error: Digital ID needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
      exit 1
    fi
    "$python" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
  fi
  .venv/bin/python -m pip install --quiet --editable "$extras"
}
