//go:build !cgo

package wasmtime

// wasmtime-go is a cgo binding, and cgo is off (CGO_ENABLED=0, or no C
// compiler was found): the package registers nothing, and a pool asked for
// wasmtime says that the program needs this package and cgo.
