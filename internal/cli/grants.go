package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/safepool/safepool/pool"
)

// grantFlags are run's grants: --env KEY=VALUE, --arg VALUE and
// --dir HOST:GUEST[:rw], each repeatable. Nothing is granted without them.
type grantFlags struct {
	env  envFlag
	args argFlag
	dirs dirFlag
}

// envFlag collects --env KEY=VALUE.
type envFlag map[string]string

func (e *envFlag) String() string { return "" }

func (e *envFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return errors.New("not KEY=VALUE; give a variable's name, '=' and its value (the value may be empty)")
	}
	if _, dup := (*e)[k]; dup {
		return fmt.Errorf("%s is granted twice; give each variable once", k)
	}
	if *e == nil {
		*e = map[string]string{}
	}
	(*e)[k] = val
	return nil
}

// argFlag collects --arg VALUE, in order.
type argFlag []string

func (a *argFlag) String() string { return "" }

func (a *argFlag) Set(v string) error { *a = append(*a, v); return nil }

// dirFlag collects --dir HOST:GUEST (read-only) and --dir HOST:GUEST:rw.
type dirFlag []pool.Dir

func (d *dirFlag) String() string { return "" }

func (d *dirFlag) Set(v string) error {
	parts := strings.Split(v, ":")
	dir := pool.Dir{}
	switch {
	case len(parts) == 3 && parts[2] == "rw":
		dir.Writable = true
	case len(parts) == 3 && parts[2] == "ro":
	case len(parts) != 2:
		return errors.New("not HOST:GUEST or HOST:GUEST:rw; for example --dir ./data:/data, or --dir ./out:/out:rw to let the guest write")
	}
	dir.HostPath, dir.GuestPath = parts[0], parts[1]
	if dir.HostPath == "" || !strings.HasPrefix(dir.GuestPath, "/") {
		return errors.New("needs a host directory and an absolute guest path, as in --dir ./data:/data")
	}
	*d = append(*d, dir)
	return nil
}

// apply puts the grants into a pool config.
func (g *grantFlags) apply(cfg *pool.Config) {
	cfg.Env = g.env
	cfg.Args = g.args
	cfg.Dirs = g.dirs
}
