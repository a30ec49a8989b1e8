package module

import "errors"

// Errors returned by Inspect and InspectWith. Each refusal wraps exactly one
// of them, in an error that names the module's problem in detail and says
// what to do; match them with errors.Is.
var (
	ErrNotWasm         = errors.New("module: not a WebAssembly module")
	ErrInvalidModule   = errors.New("module: invalid WebAssembly module")
	ErrForbiddenImport = errors.New("module: imports something the sandbox does not provide")
	ErrNotTaskModule   = errors.New("module: neither a safepool SDK module nor a WASI command")
	ErrBadSignature    = errors.New("module: export has the wrong signature")
	ErrMissingExport   = errors.New("module: lacks a required export")
	ErrNotReactor      = errors.New("module: exports the safepool SDK but was built as a command, not a reactor")

	// ErrABIVersion is a module that speaks another version of the guest
	// ABI than ABIVersion. Only a worker finds it, by calling the module's
	// safepool_abi_version.
	ErrABIVersion = errors.New("module: unsupported guest ABI version")
)

// refusal is a load error whose text is written out in full rather than
// after its sentinel's.
type refusal struct {
	sentinel error
	msg      string
}

func (r *refusal) Error() string { return r.msg }
func (r *refusal) Unwrap() error { return r.sentinel }
