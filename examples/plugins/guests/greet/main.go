//go:build wasip1

// Command greet is a well-behaved plugin: greet takes a name (a JSON
// string) and returns a greeting.
package main

import "github.com/safepool/safepool/guest"

func init() {
	guest.HandleJSON("greet", func(name string) (string, error) {
		return "hello, " + name, nil
	})
}

func main() {}
