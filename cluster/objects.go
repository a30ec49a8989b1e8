package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// requestTimeout bounds one request to the servers that has no context of
// its own.
const requestTimeout = 5 * time.Second

// ErrDamaged is the error of a module object whose bytes do not match
// its key, the SHA-256 of the module.
var ErrDamaged = errors.New("cluster: damaged object")

// isDigestKey says whether key is a hex SHA-256, the key of a module.
func isDigestKey(key string) bool {
	if len(key) != 2*sha256.Size {
		return false
	}
	_, err := hex.DecodeString(key)
	return err == nil
}

// putObject stores data under key. A module (a SHA-256 key) already
// stored with the same size is not stored again: its key is its content.
func putObject(ctx context.Context, obj jetstream.ObjectStore, key string, data []byte) error {
	if isDigestKey(key) {
		info, err := obj.GetInfo(ctx, key)
		if err == nil && info.Size == uint64(len(data)) && !info.Deleted {
			return nil
		}
	}
	err := whileElecting(ctx, func() error {
		_, err := obj.PutBytes(ctx, key, data)
		return err
	})
	if err != nil {
		return fmt.Errorf("cluster: store object %s: %w", key, err)
	}
	return nil
}

// whileElecting calls f again, for up to setupTimeout, while no server
// answers: the bucket of a cluster that just started, or that lost a
// server, has no stream leader until the servers elect one.
func whileElecting(ctx context.Context, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	wait := 50 * time.Millisecond
	for {
		err := f()
		if !errors.Is(err, nats.ErrNoResponders) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// getObject fetches the object under key, and checks a module's bytes
// against their key.
func getObject(ctx context.Context, obj jetstream.ObjectStore, key string) ([]byte, error) {
	var r jetstream.ObjectResult
	err := whileElecting(ctx, func() (err error) {
		r, err = obj.Get(ctx, key)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: fetch object %s: %w", key, err)
	}
	defer r.Close()
	// The store checks its own digest at the end of the object; a
	// mismatch is reported the same way as a module whose bytes do not
	// match its key.
	data, err := io.ReadAll(r)
	mismatch := errors.Is(err, jetstream.ErrDigestMismatch)
	if err != nil && !mismatch {
		return nil, fmt.Errorf("cluster: fetch object %s: %w", key, err)
	}
	if mismatch || isDigestKey(key) {
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); mismatch || !strings.EqualFold(got, key) {
			return nil, fmt.Errorf("%w: module object %s is damaged: its SHA-256 is %s", ErrDamaged, key, got)
		}
	}
	return data, nil
}
