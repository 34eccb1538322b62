# Sourced by the other scripts: makes sure .venv exists and holds this checkout's install.
# Reinstalls only when pyproject.toml changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
EXTRAS="${CONDUIT_EXTRAS:-}"
stamp="$VENV/.installed${EXTRAS:+-$EXTRAS}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "conduit: creating $VENV (first run only)" >&2
    python3 -m venv "$VENV"
fi
if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
    echo "conduit: installing the project into $VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        -e "$ROOT${EXTRAS:+[$EXTRAS]}"
    touch "$stamp"
fi
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
