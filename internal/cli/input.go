package cli

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"unicode/utf8"
)

// source is the input: the pipeline reads its lines (see pipeline), after
// passOver has passed over the lines an earlier run finished. It keeps
// what ended the input early, if anything.
type source struct {
	name string // "stdin" or the path, for messages
	r    *bufio.Reader
	skip int // lines to pass over first: those an earlier run finished
	line int // lines passed over so far

	// What ended the input early, if anything: fewer lines than --resume
	// passes over, or a read error. Set on the goroutine that reads the
	// input, read through end.
	mu             sync.Mutex
	short, readErr error
}

// end returns what ended the input early, if anything.
func (s *source) end() (short, readErr error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.short, s.readErr
}

func (s *source) failed(short, readErr error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.short, s.readErr = short, readErr
}

// newSource reads r. skip lines are passed over unread by the pool.
func newSource(name string, r io.Reader, skip int) *source {
	return &source{name: name, r: bufio.NewReaderSize(r, 64<<10), skip: skip}
}

// passOver reads the first skip lines without looking at them. It reports
// false, with s.short or s.readErr set, when the input has fewer lines.
func (s *source) passOver() bool {
	partial := false // a long line goes on past the buffer
	for s.line < s.skip {
		data, err := s.r.ReadSlice('\n')
		switch {
		case err == bufio.ErrBufferFull:
			partial = true
			continue
		case err == io.EOF:
			if len(data) > 0 || partial {
				s.line++ // a last line without its newline
			}
			if s.line < s.skip {
				s.failed(usageErrorf("--resume: the output already holds %d records, but %s has only %d lines; pass the input of the run you resume, or drop --resume to start over",
					s.skip, s.name, s.line), nil)
				return false
			}
			return true
		case err != nil:
			s.failed(nil, err)
			return false
		}
		partial = false
		s.line++
	}
	return true
}

// errBlank is parseLine's error for a line with nothing but white space.
var errBlank = errors.New("is blank; each line must hold one task, and only blank lines at the end are ignored")

// parseLine returns the task input a line holds under enc. Its error
// completes a sentence that starts "line N".
//
// Under JSON the line, without its "\n" or "\r\n" ending, must be one valid
// JSON value in UTF-8, and is the input itself (sharing line's memory).
// Under base64 it must be a JSON string of standard base64 (padding
// optional), and the input is what that decodes to.
func parseLine(line []byte, enc encoding) ([]byte, error) {
	in := bytes.TrimSuffix(line, []byte("\n"))
	in = bytes.TrimSuffix(in, []byte("\r"))
	if enc == encodingJSON && plainInt(in) {
		return in, nil // the common case, checked without the JSON scanner
	}
	if len(bytes.TrimSpace(in)) == 0 {
		return nil, errBlank
	}
	if !utf8.Valid(in) {
		return nil, fmt.Errorf("is not valid UTF-8, which JSON must be; pass binary input as base64 with --encoding base64")
	}
	if !json.Valid(in) {
		return nil, notJSON(json.Unmarshal(in, new(json.RawMessage)), enc)
	}
	if enc == encodingJSON {
		return in, nil
	}
	var s string
	if err := json.Unmarshal(in, &s); err != nil {
		return nil, errors.New(`is not a JSON string; under --encoding base64 each line is a string of base64, such as "aGk="`)
	}
	b, err := decodeBase64(s)
	if err != nil {
		return nil, fmt.Errorf(`is not valid base64: %v; under --encoding base64 each line is a string of standard base64, such as "aGk="`, err)
	}
	return b, nil
}

// plainInt reports whether b is a JSON integer with nothing around it:
// an optional minus, then 0 or digits that do not start with 0.
func plainInt(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	if len(b) == 0 || (b[0] == '0' && len(b) > 1) {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// notJSON says how a line is not JSON, and what a line should be.
func notJSON(err error, enc encoding) error {
	want := `each line must hold one JSON value, such as 42, "text" or {"n": 1}`
	if enc == encodingBase64 {
		want = `under --encoding base64 each line is a JSON string of base64, such as "aGk="`
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("is not valid JSON: %v (at byte %d); %s", se, se.Offset, want)
	}
	return fmt.Errorf("is not valid JSON: %v; %s", err, want)
}

// decodeBase64 decodes standard base64, with or without its padding.
func decodeBase64(s string) ([]byte, error) {
	if len(s)%4 != 0 {
		return base64.RawStdEncoding.DecodeString(s)
	}
	return base64.StdEncoding.DecodeString(s)
}

// openInput opens the input: path, or stdin when path is empty.
func openInput(path string, stdin io.Reader, stderr io.Writer) (name string, r io.Reader, close func(), err error) {
	if path == "" {
		if f, ok := stdin.(*os.File); ok && isTerminal(f) {
			fmt.Fprintln(stderr, "safepool: reading tasks from the terminal, one JSON value per line; end with Ctrl-D (or pass --in PATH)")
		}
		return "stdin", stdin, func() {}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", nil, nil, usageErrorf("--in: %v; pass a JSON Lines file, or leave --in out to read stdin", err)
	}
	return path, f, func() { f.Close() }, nil
}
