package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// readTasks reads JSON Lines: each line is one task, and its bytes, without
// the line ending, are the task's input. It reads everything before any task
// runs, so that a bad line fails the run at once, naming the line, rather
// than after the lines before it ran.
func readTasks(r io.Reader, name string) ([][]byte, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var tasks [][]byte
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if len(line) == 0 && err == io.EOF {
			return tasks, nil
		}
		if err != nil && err != io.EOF {
			return nil, failedErrorf("read %s: %v", name, err)
		}
		in, perr := parseLine(line)
		if perr != nil {
			return nil, usageErrorf("%s line %d %v; each line must hold one JSON value, such as 42, \"text\" or {\"n\": 1}", name, n, perr)
		}
		tasks = append(tasks, in)
		if err == io.EOF {
			return tasks, nil
		}
	}
}

// errBlank is parseLine's error for a line with nothing but white space.
var errBlank = errors.New("is blank")

// parseLine returns the task input a line holds: the line without its "\n"
// or "\r\n" ending, which must be one valid JSON value. The input shares
// line's memory. Its error completes a sentence that starts "line N".
func parseLine(line []byte) ([]byte, error) {
	in := bytes.TrimSuffix(line, []byte("\n"))
	in = bytes.TrimSuffix(in, []byte("\r"))
	if len(bytes.TrimSpace(in)) == 0 {
		return nil, errBlank
	}
	var v json.RawMessage
	if err := json.Unmarshal(in, &v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("is not valid JSON: %v (at byte %d)", se, se.Offset)
		}
		return nil, fmt.Errorf("is not valid JSON: %v", err)
	}
	return in, nil
}
