package cli

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/safepool/safepool/pool"
)

// flagValue is a flag.Value that keeps, in *bad, the first value that did
// not parse, as a whole sentence such as "--timeout abc: not a duration;
// use a Go duration such as 500ms, 2s or 1m30s". The flag package's own
// message would say only `invalid value "abc" for flag -timeout: ...`.
type flagValue struct {
	name string
	v    interface {
		String() string
		Set(string) error
	}
	bad *error
}

func (f flagValue) String() string {
	if f.v == nil {
		return "" // the flag package calls String on a zero Value
	}
	return f.v.String()
}

func (f flagValue) Set(s string) error {
	err := f.v.Set(s)
	if err != nil && *f.bad == nil {
		*f.bad = fmt.Errorf("--%s %s: %w", f.name, s, err)
	}
	return err
}

// boolValue is a flagValue for a flag that takes no value.
type boolValue struct{ flagValue }

func (boolValue) IsBoolFlag() bool { return true }

// boolFlag is an on/off flag: --overcommit, or --overcommit=false.
type boolFlag bool

func (b *boolFlag) String() string { return strconv.FormatBool(bool(*b)) }

func (b *boolFlag) Set(v string) error {
	x, err := strconv.ParseBool(v)
	if err != nil {
		return errors.New("not true or false; give the flag alone to turn it on")
	}
	*b = boolFlag(x)
	return nil
}

// countFlag is a whole number; the caller checks its range.
type countFlag int

func (c *countFlag) String() string { return strconv.Itoa(int(*c)) }

func (c *countFlag) Set(v string) error {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return errors.New("not a whole number; use a number such as 4")
	}
	*c = countFlag(n)
	return nil
}

// durationFlag is a Go duration; the caller checks its range.
type durationFlag time.Duration

func (d *durationFlag) String() string { return time.Duration(*d).String() }

func (d *durationFlag) Set(v string) error {
	x, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil {
		return errors.New("not a duration; use a Go duration such as 500ms, 2s or 1m30s")
	}
	*d = durationFlag(x)
	return nil
}

// sizeFlag is a number of bytes written as a size: 67108864, 64MiB, 1.5GiB,
// 512KiB or 64MB. The caller checks its range.
type sizeFlag int64

func (s *sizeFlag) String() string { return formatSize(int64(*s)) }

func (s *sizeFlag) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*s = sizeFlag(n)
	return nil
}

// sizeUnits are the units parseSize accepts, lower-cased: IEC units are
// powers of 1024, SI units powers of 1000.
var sizeUnits = map[string]int64{
	"":    1,
	"b":   1,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
	"kb":  1e3,
	"mb":  1e6,
	"gb":  1e9,
}

// parseSize parses a size: a number, optionally with a fraction, followed by
// an optional unit (B, KiB, MiB, GiB, KB, MB or GB; case does not matter).
// The single letters K, M and G are refused because people mean different
// things by them.
func parseSize(v string) (int64, error) {
	s := strings.TrimSpace(v)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(s)
	}
	num, unit := s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	if num == "" {
		return 0, fmt.Errorf("size %q does not start with a number; write it like 64MiB, 512KiB or 1GiB", v)
	}
	mult, ok := sizeUnits[unit]
	if !ok {
		switch unit {
		case "k", "m", "g":
			return 0, fmt.Errorf("size %q is ambiguous; write %s%siB (powers of 1024) or %s%sB (powers of 1000)",
				v, num, strings.ToUpper(unit), num, strings.ToUpper(unit))
		}
		return 0, fmt.Errorf("size %q has an unknown unit %q; use B, KiB, MiB, GiB, KB, MB or GB", v, s[i:])
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %q is not a number", v, num)
	}
	bytes := f * float64(mult)
	if bytes > math.MaxInt64/2 {
		return 0, fmt.Errorf("size %q is too large", v)
	}
	if bytes != math.Trunc(bytes) {
		return 0, fmt.Errorf("size %q is not a whole number of bytes", v)
	}
	return int64(bytes), nil
}

// formatSize writes n in the largest IEC unit that divides it.
func formatSize(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

// policyFlag is --on-kill or --on-error: skip, abort or retry.
type policyFlag pool.Policy

func (p *policyFlag) String() string { return pool.Policy(*p).String() }

func (p *policyFlag) Set(v string) error {
	pol, err := pool.ParsePolicy(v)
	if err != nil {
		return errors.New("not a policy; use skip, abort or retry")
	}
	*p = policyFlag(pol)
	return nil
}

// oneOf sets *i to the position of v in names.
func oneOf(i *uint8, names []string, v string) error {
	for n, name := range names {
		if v == name {
			*i = uint8(n)
			return nil
		}
	}
	return fmt.Errorf("use %s or %s", strings.Join(names[:len(names)-1], ", "), names[len(names)-1])
}

// progressMode is --progress: auto, always or never.
type progressMode uint8

const (
	progressAuto progressMode = iota
	progressAlways
	progressNever
)

var progressNames = []string{"auto", "always", "never"}

func (p *progressMode) String() string { return progressNames[*p] }
func (p *progressMode) Set(v string) error {
	return oneOf((*uint8)(p), progressNames, v)
}

// encoding is --encoding: how input lines and outputs are written.
type encoding uint8

const (
	// encodingJSON: a line is one JSON value, and its bytes are the task's
	// input; an output is written as is when it is JSON, as a string when
	// it is other UTF-8 text.
	encodingJSON encoding = iota
	// encodingBase64: a line is a JSON string of base64, and the bytes it
	// decodes to are the input; an output is written as a string of base64.
	encodingBase64
)

var encodingNames = []string{"json", "base64"}

func (e *encoding) String() string { return encodingNames[*e] }
func (e *encoding) Set(v string) error {
	return oneOf((*uint8)(e), encodingNames, v)
}
