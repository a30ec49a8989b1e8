//go:build wasip1

// Command wordcount is a well-behaved plugin: count takes a text (a JSON
// string) and returns its words and lines.
package main

import (
	"strings"

	"github.com/safepool/safepool/guest"
)

type counts struct {
	Words int `json:"words"`
	Lines int `json:"lines"`
}

func init() {
	guest.HandleJSON("count", func(text string) (counts, error) {
		return counts{Words: len(strings.Fields(text)), Lines: strings.Count(text, "\n") + 1}, nil
	})
}

func main() {}
