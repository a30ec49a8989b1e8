//go:build !wasip1

package guest

func callHost(string, []byte) ([]byte, error) { return nil, ErrNoHost }
