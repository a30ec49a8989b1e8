package main

// The C plugin (guests/csquare) is committed compiled, so that the example
// needs no C toolchain. After editing csquare.c, run
// `go generate ./examples/plugins`; it needs clang, lld and wasi-libc
// (on Debian: apt-get install -y clang lld wasi-libc
// libclang-rt-14-dev-wasm32). TestCPluginIsUpToDate checks the committed
// module against its source when clang can build it.
//
//go:generate clang --target=wasm32-wasi -O2 -mexec-model=reactor -Wl,--strip-all -o guests/csquare/csquare.wasm guests/csquare/csquare.c
