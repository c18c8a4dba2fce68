#!/usr/bin/env bash
# Install the site's JavaScript libraries (the Tabulator data grid) into frontend/node_modules with
# `npm ci`: exactly the versions frontend/package-lock.json pins, nothing else. `kompakt build` copies
# them into the built site, so the site itself never fetches anything. Idempotent: a stamp records the
# lockfile that was installed. Without npm it stops and says what to do.
set -euo pipefail
cd "$(dirname "$0")/../frontend"

if ! command -v npm >/dev/null 2>&1; then
  echo "setup-frontend: npm not found. The site's tables need the Tabulator grid (pinned in frontend/package-lock.json):" >&2
  echo "  install Node.js 18 or newer with npm (Debian: apt-get install nodejs npm) and run this again," >&2
  echo "  or build the site with plain tables: kompakt build --no-grid" >&2
  exit 1
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
