module github.com/safepool/safepool/engine/wasmtime

go 1.26.8

require (
	github.com/bytecodealliance/wasmtime-go/v39 v39.0.1
	github.com/safepool/safepool v0.0.0
	github.com/stretchr/testify v1.12.1
)

require (
	github.com/elastic/go-seccomp-bpf v1.6.0 // indirect
	github.com/tetratelabs/wazero v1.12.0 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/net v0.41.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	golang.org/x/term v0.48.0 // indirect
)

replace github.com/safepool/safepool => ../..
