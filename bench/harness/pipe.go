package harness

import (
	"fmt"
	"io"
	"os"
	"os/exec"
)

// pipeEcho is a cat process on two pipes: what comes back is what was sent,
// after a wake-up of cat and one of the caller.
type pipeEcho struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out io.ReadCloser
	buf [8]byte
}

func newPipeEcho() (*pipeEcho, error) {
	cmd := exec.Command("cat")
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &pipeEcho{cmd: cmd, in: in, out: out}, nil
}

func (p *pipeEcho) roundTrip() error {
	copy(p.buf[:], "pingpong")
	if _, err := p.in.Write(p.buf[:]); err != nil {
		return err
	}
	clear(p.buf[:])
	if _, err := io.ReadFull(p.out, p.buf[:]); err != nil {
		return err
	}
	if string(p.buf[:]) != "pingpong" {
		return fmt.Errorf("cat echoed %q", p.buf[:])
	}
	return nil
}

func (p *pipeEcho) close() {
	p.in.Close()
	_ = p.cmd.Wait()
}
