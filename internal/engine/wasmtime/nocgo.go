//go:build wasmtime && !cgo

package wasmtime

// The wasmtime engine is a cgo binding, and cgo is off (CGO_ENABLED=0, or no
// C compiler was found). The reference below is undefined on purpose, so
// that the build fails with an error that names the fix.
var _ = wasmtime_engine_needs_cgo__build_with_CGO_ENABLED_1_and_a_C_compiler
