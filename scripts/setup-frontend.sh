#!/usr/bin/env bash
# Install the site's JavaScript libraries (the Tabulator data grid) into frontend/node_modules with
# `npm ci`: exactly the versions frontend/package-lock.json pins, nothing else. `kompakt build` copies
# them into the built site, so the site itself never fetches anything. Idempotent: a stamp records the
# lockfile that was installed. Without npm it says what to do and leaves the rest of the set-up alone (the
# harness does not need it); `kompakt build` then stops with the same advice until the grid is installed.
set -euo pipefail
cd "$(dirname "$0")/../frontend"

if ! command -v npm >/dev/null 2>&1; then
  echo "setup-frontend: npm not found, so the site's grid library (Tabulator, pinned in frontend/package-lock.json)" >&2
  echo "  is not installed and kompakt build will stop until it is: install Node.js 18 or newer with npm" >&2
  echo "  (Debian: apt-get install nodejs npm) and run scripts/setup-frontend.sh, or build the site with plain" >&2
  echo "  tables: kompakt build --no-grid" >&2
  exit 0
fi
stamp=node_modules/.kompakt-lock
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "setup-frontend: frontend/node_modules is up to date"
  exit 0
fi
echo "setup-frontend: npm ci (frontend/package-lock.json)"
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
echo "$want" > "$stamp"
echo "setup-frontend: done"
