package engine

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Engine names, as pool.Config.Engine and the CLI's --engine flag spell
// them. The empty name means Wazero.
const (
	// Wazero is the default engine: pure Go, no cgo, registered in every
	// binary that runs workers.
	Wazero = "wazero"
	// Wasmtime is wasmtime-go. A binary has it when it imports
	// github.com/safepool/safepool/engine/wasmtime, which needs cgo.
	Wasmtime = "wasmtime"
)

// Errors of Check and Lookup.
var (
	ErrUnknown     = errors.New("engine: unknown engine")
	ErrUnavailable = errors.New("engine: engine not built into this binary")
)

// howToGet says, for each engine that is not in every binary, how a program
// gets it.
var howToGet = map[string]string{
	Wasmtime: `add import _ "github.com/safepool/safepool/engine/wasmtime" to the program, and build it with cgo (CGO_ENABLED=1 and a C compiler)`,
}

var (
	mu      sync.RWMutex
	engines = map[string]Engine{}
)

// Register makes the engine e available under name. Engine packages call
// it from their init function, so that importing the package is enough.
// It panics when name is already registered or e is nil.
func Register(name string, e Engine) {
	mu.Lock()
	defer mu.Unlock()
	if e == nil {
		panic("engine: Register of a nil engine " + name)
	}
	if _, dup := engines[name]; dup {
		panic("engine: Register called twice for " + name)
	}
	engines[name] = e
}

// Lookup returns the engine called name; "" means Wazero.
//
// # Errors
//
// Those of Check.
func Lookup(name string) (Engine, error) {
	name = canonical(name)
	mu.RLock()
	e, ok := engines[name]
	mu.RUnlock()
	if ok {
		return e, nil
	}
	if how, known := howToGet[name]; known {
		return nil, &unavailableError{name, how}
	}
	return nil, fmt.Errorf("%w %q; use %s", ErrUnknown, name, choices())
}

// Check reports whether this binary can run the engine called name; ""
// means Wazero.
//
// # Errors
//
// An unknown name wraps ErrUnknown and lists the choices. A known engine
// this binary lacks, such as wasmtime in a program that did not import it,
// wraps ErrUnavailable and says what to import.
func Check(name string) error {
	_, err := Lookup(name)
	return err
}

// Names returns the names of the engines registered in this binary, the
// default first.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	var names []string
	for name := range engines {
		if name != Wazero {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	if _, ok := engines[Wazero]; ok {
		names = append([]string{Wazero}, names...)
	}
	return names
}

// canonical spells the default engine's name.
func canonical(name string) string {
	if name == "" {
		return Wazero
	}
	return name
}

// choices lists every engine a binary can have, the default first: "wazero
// or wasmtime".
func choices() string {
	names := []string{Wazero}
	for name := range howToGet {
		names = append(names, name)
	}
	for _, name := range Names() {
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	slices.Sort(names[1:])
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// unavailableError is a known engine this binary lacks.
type unavailableError struct{ name, how string }

func (e *unavailableError) Error() string {
	return fmt.Sprintf("engine: %s is not built into this binary; %s", e.name, e.how)
}

func (e *unavailableError) Unwrap() error { return ErrUnavailable }
