#!/bin/sh
# check-tidy.sh checks safepool's promise to the modules that use it: a
# module that imports only the pool never downloads wasmtime-go, which lives
# in a module of its own (engine/wasmtime). It makes a fresh module whose
# main.go calls pool.New, points it at this checkout with a replace, runs
# go mod tidy with an empty module cache, and fails if wasmtime-go appears
# in the cache or in the module's go.mod and go.sum. It prints the cache's
# size.
#
#	scripts/check-tidy.sh [REPO]
#
# REPO is the safepool checkout to use, by default this one. The module
# proxy must be reachable: the empty cache downloads every dependency.
set -eu

GO=${GO:-go}
repo=$(cd "${1:-$(dirname "$0")/..}" && pwd)
tmp=$(mktemp -d)
cleanup() {
	# The module cache is read-only; go clean knows how to remove it.
	GOMODCACHE="$tmp/modcache" "$GO" clean -modcache 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
mkdir "$tmp/app" "$tmp/modcache"

cat >"$tmp/app/go.mod" <<EOF
module example.com/tidycheck

go 1.26.8

require github.com/safepool/safepool v0.0.0

replace github.com/safepool/safepool => $repo
EOF
cat >"$tmp/app/main.go" <<'EOF'
package main

import (
	"context"
	"log"

	"github.com/safepool/safepool/pool"
)

func main() {
	p, err := pool.New(context.Background(), pool.Config{Module: "tasks.wasm"})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
}
EOF

cd "$tmp/app"
echo "check-tidy: go mod tidy in a module that imports only $repo/pool, with an empty GOMODCACHE"
GOMODCACHE="$tmp/modcache" GOFLAGS=-mod=mod "$GO" mod tidy
GOMODCACHE="$tmp/modcache" GOFLAGS=-mod=mod "$GO" build -o /dev/null .

size=$(du -sh "$tmp/modcache" | cut -f1)
modules=$(find "$tmp/modcache" -mindepth 2 -maxdepth 4 -type d -name '*@v*' | wc -l)
echo "check-tidy: GOMODCACHE holds $size in $modules module versions:"
find "$tmp/modcache" -mindepth 2 -maxdepth 4 -type d -name '*@v*' | sed "s#^$tmp/modcache/#  #" | sort

found=$(find "$tmp/modcache" -type d -name 'wasmtime-go*' | sed "s#^$tmp/modcache/#  #")
if [ -n "$found" ] || grep -q wasmtime-go go.mod go.sum; then
	echo "check-tidy: FAIL: go mod tidy fetched wasmtime-go for a module that imports only the pool:"
	echo "$found"
	grep -H wasmtime-go go.mod go.sum || true
	exit 1
fi
echo "check-tidy: ok: no wasmtime-go in GOMODCACHE, go.mod or go.sum"
