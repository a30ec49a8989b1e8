package testguest

// The WAT fixtures are committed together with their compiled form, so that
// tests need no WebAssembly toolchain. After editing a .wat file, run
// `go generate ./internal/testguest` (it needs wat2wasm from wabt);
// TestWATFixturesAreUpToDate fails if a .wasm no longer matches its source.
//
// The C fixture (testdata/c) is the example plugin csquare: its source and
// its committed module are links to examples/plugins/guests/csquare, which
// `go generate ./examples/plugins` rebuilds (see examples/plugins/gen.go),
// and TestCPluginIsUpToDate there checks the module against its source.

//go:generate wat2wasm testdata/wat/wbadimport.wat -o testdata/wat/wbadimport.wasm
//go:generate wat2wasm testdata/wat/wbadsig.wat -o testdata/wat/wbadsig.wasm
//go:generate wat2wasm testdata/wat/wbigmem.wat -o testdata/wat/wbigmem.wasm
//go:generate wat2wasm testdata/wat/wchaos.wat -o testdata/wat/wchaos.wasm
//go:generate wat2wasm testdata/wat/wcmd.wat -o testdata/wat/wcmd.wasm
//go:generate wat2wasm testdata/wat/wescape.wat -o testdata/wat/wescape.wasm
//go:generate wat2wasm testdata/wat/wgrow.wat -o testdata/wat/wgrow.wasm
//go:generate wat2wasm testdata/wat/wnoexport.wat -o testdata/wat/wnoexport.wasm
//go:generate wat2wasm testdata/wat/wslowstart.wat -o testdata/wat/wslowstart.wasm
//go:generate wat2wasm testdata/wat/wsquare.wat -o testdata/wat/wsquare.wasm
//go:generate wat2wasm testdata/wat/wtable.wat -o testdata/wat/wtable.wasm
//go:generate wat2wasm testdata/wat/wtraps.wat -o testdata/wat/wtraps.wasm
