//go:build wasip1

// Command catalog is a plugin that uses what its host grants it: price
// asks the host for an item's price through a host function, in the
// currency of the granted CURRENCY variable; motd reads the granted,
// read-only /config directory.
package main

import (
	"os"

	"github.com/safepool/safepool/guest"
)

func init() {
	guest.HandleJSON("price", func(item string) (string, error) {
		p, err := guest.CallHost("price", []byte(item))
		if err != nil {
			return "no price: " + err.Error(), nil // the host said no; the plugin goes on
		}
		return string(p) + " " + os.Getenv("CURRENCY"), nil
	})
	guest.HandleJSON("motd", func(struct{}) (string, error) {
		b, err := os.ReadFile("/config/motd.txt")
		if err != nil {
			return "", err
		}
		if err := os.WriteFile("/config/motd.txt", []byte("defaced"), 0o644); err == nil {
			return "", os.ErrInvalid // a read-only grant must refuse this
		}
		return string(b), nil
	})
}

func main() {}
