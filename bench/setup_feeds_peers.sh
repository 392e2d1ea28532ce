#!/usr/bin/env bash
# Build the peers' virtual environment for bench/bench_feeds.py under bench/.venvs/feeds
# (git-ignored). Each peer is pinned to the version named in issue 7. cryptofeed
# 2.5.0 and NautilusTrader 1.231.0 need Python >= 3.12, so the venv is built
# with a 3.12+ interpreter (PYTHON=..., else python3.12/3.13 on PATH or under
# pyenv). A peer that fails to install is reported and skipped.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venvs/feeds"
pick() {
  if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; return; fi
  for c in python3.12 python3.13; do command -v "$c" >/dev/null 2>&1 && { command -v "$c"; return; }; done
  for c in "$HOME"/.pyenv/versions/3.12*/bin/python "$HOME"/.pyenv/versions/3.13*/bin/python; do
    [ -x "$c" ] && { echo "$c"; return; }
  done
  echo python3
}
py="$(pick)"
if [ ! -x "$venv/bin/python" ]; then
  "$py" -m venv "$venv" || exit 1
fi
pip="$venv/bin/python -m pip install --quiet"
$pip "msgspec" || exit 1  # the parse-only ceiling
for spec in "order-book==1.0.2" "cryptofeed==2.5.0" "ccxt==4.5.90" "nautilus_trader==1.231.0"; do
  if $pip "$spec"; then
    echo "installed $spec"
  else
    echo "FAILED to install $spec (the benchmark skips it)" >&2
  fi
done
"$venv/bin/python" -m pip list 2>/dev/null | grep -Ei '^(order-book|order_book|cryptofeed|ccxt|nautilus.trader|msgspec) '
