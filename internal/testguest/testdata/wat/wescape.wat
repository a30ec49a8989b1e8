;; wescape: a hand-written safepool SDK module (ABI v1) that tries to reach
;; outside the sandbox through WASI. Each handler makes one attempt and
;; returns the WASI errno it got, in decimal (0 means it worked). The input's
;; first byte, where a handler takes one, is a file descriptor or exit code.
;; Handlers:
;;
;;   write    fd_write of "x" to fd input[0]                    -> errno
;;   read     fd_read of 16 bytes from fd input[0]              -> errno
;;   open     path_open("etc/passwd") relative to fd input[0]   -> errno
;;   prestat  fd_prestat_get(input[0]): is it a preopened dir?  -> errno
;;   readdir  fd_readdir(input[0])                              -> errno
;;   env      environ_sizes_get                                 -> "<count> <bytes>"
;;   args     args_sizes_get                                    -> "<count> <bytes>"
;;   sock     sock_accept(input[0])                             -> errno
;;   exit     proc_exit(input[0]) in the middle of the task
;;   sleep    poll_oneoff on a clock for one hour, then "woke"
;;   loop     loops forever without calling anything
;;   ok       returns "ok"
;;
;; Memory layout: constant strings below 1024, scratch from 2048, the
;; output buffer at 3072, and a bump heap from 4096 that safepool_call resets.
(module
  (import "safepool" "result" (func $result (param i32 i32 i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $fd_prestat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_readdir" (func $fd_readdir (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_accept" (func $sock_accept (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))

  (memory (export "memory") 1)

  ;; The handler list, 64 bytes.
  (data (i32.const 0) "write\0aread\0aopen\0aprestat\0areaddir\0aenv\0aargs\0asock\0aexit\0asleep\0aloop\0aok")
  ;; Handler names, one per 16 bytes from 128.
  (data (i32.const 128) "write")
  (data (i32.const 144) "read")
  (data (i32.const 160) "open")
  (data (i32.const 176) "prestat")
  (data (i32.const 192) "readdir")
  (data (i32.const 208) "env")
  (data (i32.const 224) "args")
  (data (i32.const 240) "sock")
  (data (i32.const 256) "exit")
  (data (i32.const 272) "sleep")
  (data (i32.const 288) "loop")
  (data (i32.const 304) "ok")
  (data (i32.const 320) "woke")
  (data (i32.const 336) "x")
  (data (i32.const 352) "etc/passwd") ;; 10 bytes
  (data (i32.const 384) "unknown function") ;; 16 bytes

  (global $heap_base i32 (i32.const 4096))
  (global $heap (mut i32) (i32.const 4096))
  (global $spins (mut i32) (i32.const 0))

  (func (export "safepool_abi_version") (result i32)
    (i32.const 1))

  ;; safepool_alloc: 8-byte aligned bump allocation, growing memory as needed.
  (func $alloc (export "safepool_alloc") (param $size i32) (result i32)
    (local $ptr i32) (local $end i32) (local $need i32)
    (local.set $ptr (global.get $heap))
    (local.set $end
      (i32.and (i32.add (i32.add (local.get $ptr) (local.get $size)) (i32.const 7))
               (i32.const -8)))
    (local.set $need
      (i32.sub (i32.shr_u (i32.add (local.get $end) (i32.const 65535)) (i32.const 16))
               (memory.size)))
    (if (i32.gt_s (local.get $need) (i32.const 0))
      (then
        (if (i32.eq (memory.grow (local.get $need)) (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $heap (local.get $end))
    (local.get $ptr))

  ;; $is: 1 if the name at $a ($alen bytes) equals the NUL-padded constant at $b.
  (func $is (param $a i32) (param $alen i32) (param $b i32) (result i32)
    (local $i i32)
    (if (i32.gt_u (local.get $alen) (i32.const 15))
      (then (return (i32.const 0))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $alen)))
        (if (i32.ne (i32.load8_u (i32.add (local.get $a) (local.get $i)))
                    (i32.load8_u (i32.add (local.get $b) (local.get $i))))
          (then (return (i32.const 0))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    ;; The constant must end where the name ends.
    (i32.eqz (i32.load8_u (i32.add (local.get $b) (local.get $alen)))))

  ;; $itoa writes $n in decimal at $at and returns the number of bytes.
  (func $itoa (param $n i32) (param $at i32) (result i32)
    (local $len i32) (local $m i32) (local $i i32) (local $c i32)
    (local.set $m (local.get $n))
    (loop $count
      (local.set $len (i32.add (local.get $len) (i32.const 1)))
      (local.set $m (i32.div_u (local.get $m) (i32.const 10)))
      (br_if $count (i32.ne (local.get $m) (i32.const 0))))
    (local.set $m (local.get $n))
    (local.set $i (local.get $len))
    (loop $digit
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (i32.store8 (i32.add (local.get $at) (local.get $i))
                  (i32.add (i32.const 48) (i32.rem_u (local.get $m) (i32.const 10))))
      (local.set $m (i32.div_u (local.get $m) (i32.const 10)))
      (br_if $digit (i32.gt_u (local.get $i) (i32.const 0))))
    (local.get $len))

  ;; $report returns $n in decimal as the task's output.
  (func $report (param $n i32)
    (call $result (i32.const 0) (i32.const 3072) (call $itoa (local.get $n) (i32.const 3072))))

  ;; $pair returns the two u32 at 2048 and 2052 as "<a> <b>".
  (func $pair
    (local $n i32)
    (local.set $n (call $itoa (i32.load (i32.const 2048)) (i32.const 3072)))
    (i32.store8 (i32.add (i32.const 3072) (local.get $n)) (i32.const 32))
    (local.set $n (i32.add (local.get $n) (i32.const 1)))
    (local.set $n (i32.add (local.get $n)
      (call $itoa (i32.load (i32.const 2052)) (i32.add (i32.const 3072) (local.get $n)))))
    (call $result (i32.const 0) (i32.const 3072) (local.get $n)))

  ;; $arg is the input's first byte, or 0 without input.
  (func $arg (param $in i32) (param $in_len i32) (result i32)
    (if (result i32) (i32.eqz (local.get $in_len))
      (then (i32.const 0))
      (else (i32.load8_u (local.get $in)))))

  ;; $sleep waits on a one-hour clock subscription.
  (func $sleep
    ;; subscription at 2048 (48 bytes): userdata 0, tag 0 (clock),
    ;; clock id 1 (monotonic), timeout 3600 s, precision 0, flags 0.
    (memory.fill (i32.const 2048) (i32.const 0) (i32.const 48))
    (i32.store (i32.const 2064) (i32.const 1))
    (i64.store (i32.const 2072) (i64.const 3600000000000))
    (drop (call $poll_oneoff (i32.const 2048) (i32.const 2112) (i32.const 1) (i32.const 2144)))
    (call $result (i32.const 0) (i32.const 320) (i32.const 4)))

  ;; $run dispatches one task by function name.
  (func $run (param $fn i32) (param $fn_len i32) (param $in i32) (param $in_len i32)
    (local $fd i32)
    (local.set $fd (call $arg (local.get $in) (local.get $in_len)))
    ;; iovec at 2048: {ptr, len}; the count or size lands at 2056.
    (if (call $is (local.get $fn) (local.get $fn_len) (i32.const 128))
      (then
        (i32.store (i32.const 2048) (i32.const 336))
        (i32.store (i32.const 2052) (i32.const 1))
        (call $report (call $fd_write (local.get $fd) (i32.const 2048) (i32.const 1) (i32.const 2056)))
        (return)))
    (if (call $is (local.get $fn) (local.get $fn_len) (i32.const 144))
      (then
        (i32.store (i32.const 2048) (i32.const 2560))
        (i32.store (i32.const 2052) (i32.const 16))
        (call $report (call $fd_read (local.get $fd) (i32.const 2048) (i32.const 1) (i32.const 2056)))
        (return)))
    (if (call $is (local.get $fn) (local.get $fn_len) (i32.const 160))
      (then
        ;; path_open(dirfd, dirflags=1 (follow), path, path_len, oflags=0,
        ;;           rights=all, inheriting=all, fdflags=0, &fd)
        (call $report (call $path_open (local.get $fd) (i32.const 1) (i32.const 352) (i32.const 10)
          (i32.const 0) (i64.const -1) (i64.const -1) (i32.const 0) (i32.const 2056)))
        (return)))
    (if (call $is (local.get $fn) (local.get $fn_len) (i32.const 176))
      (then
        (call $report (call $fd_prestat_get (local.get $fd) (i32.const 2048)))
        (return)))
    (if (call $is (local.get $fn) (local.get $fn_len) (i32.const 192))
      (then
        (call $report (call $fd_readdir (local.get $fd) (i32.const 2560) (i32.const 256) (i64.const 0) (i32.const 2056)))
        (return)))
    (if (call $is (local.get $fn) (local.get $fn_len) (i32.const 208))
      (then
        (drop (call $environ_sizes_get (i32.const 2048) (i32.const 2052)))
        (call $pair)
        (return)))
    (if (call $is (local.get $fn) (local.get $fn_len) (i32.const 224))
      (then
        (drop (call $args_sizes_get (i32.const 2048) (i32.const 2052)))
        (call $pair)
        (return)))
    (if (call $is (local.get $fn) (local.get $fn_len) (i32.const 240))
      (then
        (call $report (call $sock_accept (local.get $fd) (i32.const 0) (i32.const 2056)))
        (return)))
    (if (call $is (local.get $fn) (local.get $fn_len) (i32.const 256))
      (then
        (call $proc_exit (local.get $fd))
        (unreachable)))
    (if (call $is (local.get $fn) (local.get $fn_len) (i32.const 272))
      (then
        (call $sleep)
        (return)))
    (if (call $is (local.get $fn) (local.get $fn_len) (i32.const 288))
      (then
        (loop $forever
          (global.set $spins (i32.add (global.get $spins) (i32.const 1)))
          (br $forever))))
    (if (call $is (local.get $fn) (local.get $fn_len) (i32.const 304))
      (then
        (call $result (i32.const 0) (i32.const 304) (i32.const 2))
        (return)))
    (call $result (i32.const 2) (i32.const 384) (i32.const 16)))

  (func (export "safepool_call") (param $fn i32) (param $fn_len i32) (param $in i32) (param $in_len i32)
    (call $run (local.get $fn) (local.get $fn_len) (local.get $in) (local.get $in_len))
    (global.set $heap (global.get $heap_base)))

  (func (export "safepool_handlers")
    (call $result (i32.const 0) (i32.const 0) (i32.const 64)))
)
