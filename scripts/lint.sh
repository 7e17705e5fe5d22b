#!/usr/bin/env bash
# Every linter runs, even after one fails; the exit status is non-zero if any failed.
# Called by `make lint` (which has already run `uv sync` and `npm ci`).
set -uo pipefail
cd "$(dirname "$0")/.."

UV=${UV:-uv}
BUF=${BUF:-node_modules/.bin/buf}
failed=()

step() {
  local name=$1
  shift
  echo "==> $name"
  if ! "$@"; then
    failed+=("$name")
  fi
}

# shellcheck disable=SC2086  # $UV may be "python3 -m uv"
step "ruff check" $UV run ruff check .
step "ruff format --check" $UV run ruff format --check .
mapfile -t mypy_paths < <(ls -d libs/kit/src libs/standins/src services/*/src 2>/dev/null)
step "mypy" $UV run mypy "${mypy_paths[@]}"

if [[ -x $BUF ]]; then
  step "buf lint" "$BUF" lint proto
  # buf breaking needs a baseline: the main branch (local, else origin/main) with proto/ in it.
  against=""
  for ref in main origin/main; do
    if git rev-parse -q --verify "$ref^{commit}" >/dev/null 2>&1 &&
      git cat-file -e "$ref:proto/buf.yaml" 2>/dev/null; then
      if [[ $ref == main ]]; then against=".git#branch=main,subdir=proto"; else against=".git#ref=origin/main,subdir=proto"; fi
      break
    fi
  done
  if [[ -n $against ]]; then
    step "buf breaking (against $against)" "$BUF" breaking proto --against "$against"
  else
    echo "==> buf breaking: skipped (no main commit containing proto/buf.yaml yet)"
  fi
else
  echo "==> buf lint / buf breaking: skipped ($BUF not found; install Node.js/npm and run make setup)"
fi

if ((${#failed[@]})); then
  echo "lint failed: ${failed[*]}" >&2
  exit 1
fi
echo "lint ok"
