package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/safepool/safepool/pool"
)

// resumePoint is what an earlier run left in --out, and where a run with
// --resume goes on from.
type resumePoint struct {
	records int   // records kept: the input lines to pass over
	size    int64 // the bytes they take; the rest of the file is cut off
	cut     int64 // bytes cut off: a partial last line, or not_run records on
	bad     int   // bad-line records among those kept
	badLine int   // the line number of the first of them
}

// readResumePoint reads --out for --resume. It keeps the longest prefix of
// whole records in input order that ran or were bad lines: a partial last
// line (left by a kill during a write) is cut off, and so is everything
// from the first not_run record on, so that those tasks run again. A
// missing file resumes from the first line. A line that is whole but not
// a record of this command, or out of order, means the file is not what
// --resume expects, and nothing is changed.
func readResumePoint(path string) (resumePoint, error) {
	var at resumePoint
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return at, nil
	}
	if err != nil {
		return at, usageErrorf("--resume: %v; pass the --out file of the run to resume", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return at, usageErrorf("--resume: %v; pass the --out file of the run to resume", err)
	}
	err = scanLines(f, path, func(n int, line []byte) (bool, error) {
		r, err := decodeRecord(line)
		switch {
		case err != nil:
			return false, notOurs(path, n, "is not a record of 'safepool run' (%v)", err)
		case r.Index != at.records:
			return false, notOurs(path, n, "has index %d where %d should be, so the file is not one run's output in input order", r.Index, at.records)
		case r.Status == pool.StatusNotRun.String():
			return false, nil
		case r.Status == pool.StatusError.String() && r.Attempts == 0:
			if at.bad++; at.badLine == 0 {
				at.badLine = n
			}
		}
		at.records++
		at.size += int64(len(line))
		return true, nil
	})
	at.cut = fi.Size() - at.size
	return at, err
}

// trimSideFile cuts --stats or --killed (flag) back to the records of the
// first keep slots, for --resume: both are written in index order and
// flushed before --out, so they may run ahead of it. decode checks one
// line and returns its index. It returns the size to keep; a missing file
// keeps 0.
func trimSideFile(path, flag string, keep int, decode func([]byte) (int, error)) (int64, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, usageErrorf("%s: %v; pass a path you can read and write", flag, err)
	}
	defer f.Close()
	var size int64
	last := -1
	err = scanLines(f, path, func(n int, line []byte) (bool, error) {
		i, err := decode(line)
		switch {
		case err != nil:
			return false, usageErrorf("--resume: %s line %d is not a %s record of 'safepool run' (%v); pass the %s file of the run you resume, or another path", path, n, flag, err, flag)
		case i <= last:
			return false, usageErrorf("--resume: %s line %d has index %d after %d, so it is not one run's %s file; pass the %s file of the run you resume, or another path", path, n, i, last, flag, flag)
		case i >= keep:
			return false, nil
		}
		last = i
		size += int64(len(line))
		return true, nil
	})
	return size, err
}

// scanLines calls fn with each whole line of r (with its newline) and its
// line number, until fn returns false or an error. A last line without a
// newline is never passed: it is a partial write.
func scanLines(r io.Reader, name string, fn func(int, []byte) (bool, error)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return failedErrorf("--resume: read %s: %v", name, err)
		}
		if more, err := fn(n, line); !more || err != nil {
			return err
		}
	}
}

func notOurs(path string, n int, format string, a ...any) error {
	return usageErrorf("--resume: %s line %d %s; pass the --out file of the run you resume, or drop --resume to start over (which overwrites the file)",
		path, n, fmt.Sprintf(format, a...))
}

// strict decodes one JSON object into v, which must have every field of
// the object: unknown fields are refused, and so is anything after it.
func strict(line []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one value on the line")
	}
	return nil
}

// decodeRecord decodes a line of --out, which must have all five fields
// and a known status.
func decodeRecord(line []byte) (resultRecord, error) {
	var r struct {
		Index    *int            `json:"index"`
		Status   *string         `json:"status"`
		Output   json.RawMessage `json:"output"`
		Error    *string         `json:"error"`
		Attempts *int            `json:"attempts"`
	}
	if err := strict(line, &r); err != nil {
		return resultRecord{}, err
	}
	if r.Index == nil || r.Status == nil || r.Output == nil || r.Error == nil || r.Attempts == nil {
		return resultRecord{}, errors.New("a field is missing: each has index, status, output, error and attempts")
	}
	var s pool.Status
	if err := s.UnmarshalText([]byte(*r.Status)); err != nil {
		return resultRecord{}, fmt.Errorf("unknown status %q", *r.Status)
	}
	return resultRecord{Index: *r.Index, Status: *r.Status, Output: r.Output, Error: *r.Error, Attempts: *r.Attempts}, nil
}

// killedIndex and statsIndex are trimSideFile's decoders.
func killedIndex(line []byte) (int, error) {
	var r killedRecord
	err := strict(line, &r)
	return r.Index, err
}

func statsIndex(line []byte) (int, error) {
	var r statsRecord
	err := strict(line, &r)
	return r.Index, err
}
