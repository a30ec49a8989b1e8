// Package wasmtime is safepool's second engine, wasmtime-go. It is built
// only with -tags wasmtime, which needs cgo; built so, importing it
// registers it as engine.Wasmtime.
package wasmtime
