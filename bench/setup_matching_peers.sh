#!/usr/bin/env bash
# Build one virtual environment per matching-benchmark peer under bench/.venvs/.
#
# The peers are other people's engines that shardex is compared with in
# bench/bench_matching.py; none of them is a dependency of shardex.  Each gets
# its own venv because their Python requirements differ (matching-engine needs
# >= 3.12, limit-order-book ships wheels for 3.13 only) and so that one broken
# install cannot take the others with it.
#
# Idempotent: a venv whose package already imports at the pinned version is
# left alone.  Exit status: 0 when every required peer is ready, 1 otherwise
# (optional peers that fail only print a warning).
#
# Usage: bash bench/setup_matching_peers.sh [--force]   (--force rebuilds all)
set -u -o pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venvs="$here/.venvs"
pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
force=0
[[ "${1:-}" == "--force" ]] && force=1

# name | python | pip requirement | import name | required(1)/optional(0)
peers=(
  "matching-engine|3.12.1|matching-engine==0.1.1|matching_engine|1"
  "limit-order-book|3.13.0|limit-order-book==3.1.0|limit_order_book|1"
  "orderly-chaos|3.13.0|orderly-chaos==0.2.0|orderly_chaos|1"
  "obook|3.13.0|obook==0.1.0|obook|1"
  "liquibook|3.13.0|liquibook==2.0.1|liquibook|0"
  "cython-orderbook|3.13.0|cython-orderbook==0.1.2|cython_orderbook|0"
)

mkdir -p "$venvs"
failed_required=()
failed_optional=()

for spec in "${peers[@]}"; do
  IFS='|' read -r name pyver req mod required <<<"$spec"
  venv="$venvs/$name"
  want_version="${req##*==}"
  interp="$pyenv_root/versions/$pyver/bin/python"

  check() {
    "$venv/bin/python" - "$req" "$mod" <<'PY' >/dev/null 2>&1
import importlib, importlib.metadata, sys
dist = sys.argv[1].split("==")[0]
want = sys.argv[1].split("==")[1]
importlib.import_module(sys.argv[2])
sys.exit(0 if importlib.metadata.version(dist) == want else 1)
PY
  }

  if [[ $force -eq 0 && -x "$venv/bin/python" ]] && check; then
    echo "ok      $name ($req) already in $venv"
    continue
  fi
  if [[ ! -x "$interp" ]]; then
    echo "FAILED  $name: needs Python $pyver at $interp (install it with: pyenv install $pyver)" >&2
    if [[ $required -eq 1 ]]; then failed_required+=("$name"); else failed_optional+=("$name"); fi
    continue
  fi
  echo "build   $name ($req) with Python $pyver ..."
  rm -rf "$venv"
  log="$venvs/$name.install.log"
  if "$interp" -m venv "$venv" >"$log" 2>&1 \
     && "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$req" >>"$log" 2>&1 \
     && check; then
    echo "ok      $name ($req $want_version) installed in $venv"
  else
    echo "FAILED  $name: pip install $req did not give an importable '$mod'; see $log:" >&2
    grep -v "WARNING: Location" "$log" | tail -n 15 >&2
    if [[ $required -eq 1 ]]; then failed_required+=("$name"); else failed_optional+=("$name"); fi
  fi
done

if [[ ${#failed_optional[@]} -gt 0 ]]; then
  echo "warning: optional peers not available: ${failed_optional[*]} (the benchmark skips them)" >&2
fi
if [[ ${#failed_required[@]} -gt 0 ]]; then
  echo "error: required peers not available: ${failed_required[*]}" >&2
  exit 1
fi
echo "all required peers ready under $venvs"
