package cli

import (
	"errors"
	"fmt"
)

// exitError is an error with the exit code it stands for.
type exitError struct {
	code   int
	err    error
	silent bool // already reported; print nothing more
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErrorf makes an error that exits with code 2: bad usage, bad input or
// a bad module. The message must say what to do.
func usageErrorf(format string, a ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, a...)}
}

// failedErrorf makes an error that exits with code 1: the run aborted or
// failed.
func failedErrorf(format string, a ...any) error {
	return &exitError{code: exitFailed, err: fmt.Errorf(format, a...)}
}

// silentExit exits with code without printing anything more.
func silentExit(code int) error {
	return &exitError{code: code, err: errors.New("exit"), silent: true}
}
