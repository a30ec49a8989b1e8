// Package testguest provides the WebAssembly task modules that the project's
// tests run: [Path] returns a fixture's compiled module by name, building Go
// fixtures on demand.
//
// # Go fixtures
//
// Each lives in testdata/<name>/main.go and is built for GOOS=wasip1
// GOARCH=wasm.
//
// tasks is an SDK reactor. Numeric inputs are decimal integers (valid JSON);
// outputs are raw bytes unless marked JSON.
//
//	handler      input          what it does, and its output
//	square       JSON integer   n*n as JSON: 7 gives 49
//	slow_square  JSON integer   sleeps 30 ms, then as square
//	echo         any bytes      returns the input
//	fail         any bytes      returns the error "boom: <input>"
//	panic        ignored        panics with "kaboom"
//	memhog       n              allocates and touches n MiB, keeps it live until it returns; "n"
//	spin         ignored        loops forever without calling anything that yields
//	sleep        ms             time.Sleep(ms); "slept"
//	stderr       n              writes n KiB of 'e' to stderr; "ok"
//	stdout       n              writes n KiB of 'o' to stdout with fmt.Print; "ok"
//	big          n              returns n KiB of 'x'
//	garbage      ignored        allocates 1 MiB that becomes garbage; "1048576"
//	hold         N              keeps N MiB live until the next call of hold; "N"
//	exit         code           os.Exit(code)
//	recurse      ignored        recurses without bound until the stack or memory runs out
//	env          ignored        JSON {"env": os.Environ(), "args": os.Args}
//	readfile     a path         JSON {"content", "read_error", "entries", "readdir_error"}: what
//	                            os.ReadFile(path) and os.ReadDir("/") gave; empty fields are left out
//	writefile    path\ncontent  os.WriteFile(path, content); "ok"
//	symlink      target\nname   os.Symlink(target, name); "ok"
//	callhost     name\ninput    guest.CallHost(name, input): "got:<output>", or "host error: <error>"
//
// A non-integer input to a numeric handler is a task error.
//
// upper is a WASI command: it writes stdin upper-cased to stdout. Input
// "fail" writes "bad input" to stderr and exits with code 3; input "spin"
// loops forever; input "grants" writes its environment, its arguments and
// /data/hello.txt (white space around these words is ignored).
//
// sdkcmd uses the SDK (one handler, echo) but is built without
// -buildmode=c-shared, as its buildmode file says: the mistake of building
// an SDK module as a command, which exports _start beside the SDK's exports
// and must be refused at load.
//
// # C fixtures
//
// Written in C in testdata/c/<name>.c and committed with the <name>.wasm
// that clang, lld and wasi-libc make of them (see gen.go). csquare.c and
// csquare.wasm are links to examples/plugins/guests/csquare: the example
// plugin and the fixture are one source and one module.
//
//	csquare     SDK module in C: square (ASCII decimal in, its square out), env (the
//	            granted GREETING or "unset"), upper (calls the host function upper:
//	            "got:<output>" or "host error: <message>"), fail (error "boom: <input>")
//
// # WAT fixtures
//
// Hand-written in testdata/wat/<name>.wat, committed with the <name>.wasm
// that wat2wasm makes of them (see gen.go). They show that the guest ABI
// needs nothing from Go.
//
//	wsquare     SDK module with every export; handler square: ASCII decimal in, its square out
//	wchaos      wsquare plus slow_square (sleeps 30 ms on a WASI clock, then squares)
//	            and big (n KiB of 'x'), for the pool's chaos test
//	wgrow       SDK module without safepool_batch; grow takes pages until memory.grow
//	            fails, then hits unreachable; ok returns "ok"
//	wtraps      SDK module; handlers divzero, ok, overflow (stack), unreachable
//	wbadimport  imports env.foo; must be rejected at load
//	wnoexport   exports neither _start nor safepool_abi_version
//	wbadsig     safepool_abi_version is (i32) -> i32 and safepool_call is (i32) -> i32
//	wbigmem     SDK module whose memory's minimum is 1280 pages (80 MiB); handler ok
//	wslowstart  SDK module whose _initialize loops forever when memory can grow by
//	            16 pages and returns at once when it cannot (a cap of one page);
//	            handler ok
//	wcmd        command module whose _start writes "hi\n" to stdout
//	wescape     SDK module whose handlers try to leave the sandbox through WASI (write
//	            or read a descriptor, open a file, list a directory, read the environment
//	            or arguments, accept on a socket) and return the errno they got; also
//	            exit (proc_exit mid-task), sleep (an hour on a WASI clock), loop, ok
//	wtable      SDK module; grow calls table.grow until it fails, making the worker
//	            allocate outside linear memory (8 bytes per entry); size, ok
//
// # Modules made in code
//
// [Module] encodes small modules in the binary format, for cases that need
// one exact defect, and [Malformed] is the corpus of modules safepool must
// refuse at load time: not wasm, truncated, broken sections, counts larger
// than the file, missing or wrongly typed exports, imports the sandbox does
// not provide, and well-formed modules that fail when a worker starts them.
package testguest
