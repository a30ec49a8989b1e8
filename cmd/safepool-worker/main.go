// Command safepool-worker is the lean worker of the safepool command: the
// sandbox alone, with wazero. 'safepool run', 'safepool serve' and
// 'safepool inspect' start their workers with it when it sits next to the
// safepool executable (and the engine is wazero), and otherwise re-execute
// safepool itself as 'safepool worker'.
//
// A worker process runs the init functions of every package linked into
// its executable each time it starts. The safepool command links NATS for
// 'serve' and 'run --nats'; this executable does not, so each worker
// starts faster and smaller. Install both:
//
//	go install github.com/safepool/safepool/cmd/safepool github.com/safepool/safepool/cmd/safepool-worker
//
// It is started by the command, never by hand.
package main

import "github.com/safepool/safepool/sandbox"

func main() { sandbox.Main() }
