;; wchaos: wsquare with two more handlers, for the pool's chaos test: a worker
;; of this module starts in milliseconds, so the test can kill many of them.
;; Handlers:
;;
;;   square       input: an ASCII decimal integer, optional leading '-', white
;;                space around it ignored. output: its square as ASCII
;;                decimal (i64, wrapping on overflow). Other input gives
;;                status 1.
;;   slow_square  sleeps 30 ms on a WASI clock, then as square.
;;   big          input: n, an ASCII decimal integer. output: n KiB of 'x'.
;;
;; Memory layout: constant strings below 1024, a 32-byte scratch area for
;; number output at 1024, a clock subscription at 2048, and a bump heap from
;; 4096 that safepool_call and safepool_batch reset when they return.
(module
  (import "safepool" "result" (func $result (param i32 i32 i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))

  (memory (export "memory") 1)

  (data (i32.const 0) "square") ;; 6 bytes: the first handler's name
  (data (i32.const 224) "square\0aslow_square\0abig") ;; 22 bytes: the handler list
  (data (i32.const 256) "slow_square") ;; 11 bytes
  (data (i32.const 272) "big") ;; 3 bytes
  (data (i32.const 16) "unknown function \22") ;; 18 bytes
  (data (i32.const 48) "\22; this module has: square, slow_square, big") ;; 44 bytes
  (data (i32.const 96) "square: input is not a decimal integer") ;; 38 bytes
  (data (i32.const 160) "malformed batch: a record runs past the end of the batch") ;; 56 bytes

  (global $heap_base i32 (i32.const 4096))
  (global $heap (mut i32) (i32.const 4096))

  (func (export "safepool_abi_version") (result i32)
    (i32.const 1))

  ;; safepool_alloc: 8-byte aligned bump allocation, growing memory as needed.
  ;; Returns 0 when memory cannot grow.
  (func $alloc (export "safepool_alloc") (param $size i32) (result i32)
    (local $ptr i32) (local $end i32) (local $need i32)
    (if (i32.lt_s (local.get $size) (i32.const 0))
      (then (return (i32.const 0))))
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

  ;; $eq: 1 if the two byte strings are equal.
  (func $eq (param $a i32) (param $alen i32) (param $b i32) (param $blen i32) (result i32)
    (local $i i32)
    (if (i32.ne (local.get $alen) (local.get $blen))
      (then (return (i32.const 0))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $alen)))
        (if (i32.ne (i32.load8_u (i32.add (local.get $a) (local.get $i)))
                    (i32.load8_u (i32.add (local.get $b) (local.get $i))))
          (then (return (i32.const 0))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 1))

  ;; $is_space: 1 for ' ', '\t', '\n' and '\r'.
  (func $is_space (param $c i32) (result i32)
    (i32.or (i32.or (i32.eq (local.get $c) (i32.const 32)) (i32.eq (local.get $c) (i32.const 9)))
            (i32.or (i32.eq (local.get $c) (i32.const 10)) (i32.eq (local.get $c) (i32.const 13)))))

  ;; $unknown reports status 2: unknown function "<name>"; this module has: square
  (func $unknown (param $fn i32) (param $fn_len i32)
    (local $msg i32)
    (local.set $msg (call $alloc (i32.add (local.get $fn_len) (i32.const 62))))
    (if (i32.eqz (local.get $msg))
      (then
        (call $result (i32.const 2) (i32.const 16) (i32.const 16))
        (return)))
    (memory.copy (local.get $msg) (i32.const 16) (i32.const 18))
    (memory.copy (i32.add (local.get $msg) (i32.const 18)) (local.get $fn) (local.get $fn_len))
    (memory.copy (i32.add (i32.add (local.get $msg) (i32.const 18)) (local.get $fn_len))
                 (i32.const 48) (i32.const 44))
    (call $result (i32.const 2) (local.get $msg) (i32.add (local.get $fn_len) (i32.const 62))))

  ;; $square parses the input, squares it and reports the result.
  (func $square (param $in i32) (param $in_len i32)
    (local $i i32) (local $end i32) (local $c i32) (local $neg i32)
    (local $v i64) (local $pos i32)
    (local.set $i (local.get $in))
    (local.set $end (i32.add (local.get $in) (local.get $in_len)))
    ;; Trim white space at both ends.
    (block $trimmed
      (loop $front
        (br_if $trimmed (i32.ge_u (local.get $i) (local.get $end)))
        (br_if $trimmed (i32.eqz (call $is_space (i32.load8_u (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $front)))
    (block $trimmed
      (loop $back
        (br_if $trimmed (i32.ge_u (local.get $i) (local.get $end)))
        (br_if $trimmed (i32.eqz (call $is_space (i32.load8_u (i32.sub (local.get $end) (i32.const 1))))))
        (local.set $end (i32.sub (local.get $end) (i32.const 1)))
        (br $back)))
    ;; Optional sign.
    (if (i32.lt_u (local.get $i) (local.get $end))
      (then
        (if (i32.eq (i32.load8_u (local.get $i)) (i32.const 45))
          (then
            (local.set $neg (i32.const 1))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))))))
    ;; At least one digit, and nothing else.
    (if (i32.ge_u (local.get $i) (local.get $end))
      (then
        (call $result (i32.const 1) (i32.const 96) (i32.const 38))
        (return)))
    (block $parsed
      (loop $digit
        (br_if $parsed (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $c (i32.sub (i32.load8_u (local.get $i)) (i32.const 48)))
        (if (i32.gt_u (local.get $c) (i32.const 9))
          (then
            (call $result (i32.const 1) (i32.const 96) (i32.const 38))
            (return)))
        (local.set $v (i64.add (i64.mul (local.get $v) (i64.const 10))
                               (i64.extend_i32_u (local.get $c))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $digit)))
    (if (local.get $neg)
      (then (local.set $v (i64.sub (i64.const 0) (local.get $v)))))
    (local.set $v (i64.mul (local.get $v) (local.get $v)))
    ;; Format: digits of the magnitude backwards from 1056, then the sign.
    (local.set $neg (i64.lt_s (local.get $v) (i64.const 0)))
    (if (local.get $neg)
      (then (local.set $v (i64.sub (i64.const 0) (local.get $v)))))
    (local.set $pos (i32.const 1056))
    (loop $out
      (local.set $pos (i32.sub (local.get $pos) (i32.const 1)))
      (i64.store8 (local.get $pos)
        (i64.add (i64.const 48) (i64.rem_u (local.get $v) (i64.const 10))))
      (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
      (br_if $out (i64.ne (local.get $v) (i64.const 0))))
    (if (local.get $neg)
      (then
        (local.set $pos (i32.sub (local.get $pos) (i32.const 1)))
        (i32.store8 (local.get $pos) (i32.const 45))))
    (call $result (i32.const 0) (local.get $pos) (i32.sub (i32.const 1056) (local.get $pos))))

;; $sleep30 waits 30 ms on a monotonic clock subscription at 2048.
  (func $sleep30
    (memory.fill (i32.const 2048) (i32.const 0) (i32.const 48))
    (i32.store (i32.const 2064) (i32.const 1))
    (i64.store (i32.const 2072) (i64.const 30000000))
    (drop (call $poll_oneoff (i32.const 2048) (i32.const 2112) (i32.const 1) (i32.const 2144))))

  ;; $big returns n KiB of 'x', n being the ASCII decimal input.
  (func $big (param $in i32) (param $in_len i32)
    (local $i i32) (local $n i32) (local $c i32) (local $buf i32)
    (block $parsed
      (loop $digit
        (br_if $parsed (i32.ge_u (local.get $i) (local.get $in_len)))
        (local.set $c (i32.sub (i32.load8_u (i32.add (local.get $in) (local.get $i))) (i32.const 48)))
        (if (i32.gt_u (local.get $c) (i32.const 9))
          (then
            (call $result (i32.const 1) (i32.const 96) (i32.const 38))
            (return)))
        (local.set $n (i32.add (i32.mul (local.get $n) (i32.const 10)) (local.get $c)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $digit)))
    (local.set $n (i32.shl (local.get $n) (i32.const 10)))
    (local.set $buf (call $alloc (local.get $n)))
    (if (i32.and (i32.eqz (local.get $buf)) (i32.ne (local.get $n) (i32.const 0)))
      (then (unreachable)))
    (memory.fill (local.get $buf) (i32.const 120) (local.get $n))
    (call $result (i32.const 0) (local.get $buf) (local.get $n)))

  ;; $run dispatches one task by function name.
  (func $run (param $fn i32) (param $fn_len i32) (param $in i32) (param $in_len i32)
    (if (call $eq (local.get $fn) (local.get $fn_len) (i32.const 0) (i32.const 6))
      (then
        (call $square (local.get $in) (local.get $in_len))
        (return)))
    (if (call $eq (local.get $fn) (local.get $fn_len) (i32.const 256) (i32.const 11))
      (then
        (call $sleep30)
        (call $square (local.get $in) (local.get $in_len))
        (return)))
    (if (call $eq (local.get $fn) (local.get $fn_len) (i32.const 272) (i32.const 3))
      (then
        (call $big (local.get $in) (local.get $in_len))
        (return)))
    (call $unknown (local.get $fn) (local.get $fn_len)))

  (func (export "safepool_call") (param $fn i32) (param $fn_len i32) (param $in i32) (param $in_len i32)
    (call $run (local.get $fn) (local.get $fn_len) (local.get $in) (local.get $in_len))
    (global.set $heap (global.get $heap_base)))

  (func (export "safepool_handlers")
    (call $result (i32.const 0) (i32.const 224) (i32.const 22)))

  ;; safepool_batch: records of u32 name length, name, u32 input length,
  ;; input, run in order. A record that runs past the end gets one status-1
  ;; result and ends the batch.
  (func (export "safepool_batch") (param $ptr i32) (param $len i32)
    (local $pos i32) (local $end i32)
    (local $fn i32) (local $fn_len i32) (local $in i32) (local $in_len i32)
    (local.set $pos (local.get $ptr))
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    (block $malformed
      (block $done
        (loop $next
          (br_if $done (i32.ge_u (local.get $pos) (local.get $end)))
          (br_if $malformed (i32.lt_u (i32.sub (local.get $end) (local.get $pos)) (i32.const 4)))
          (local.set $fn_len (i32.load (local.get $pos)))
          (local.set $fn (i32.add (local.get $pos) (i32.const 4)))
          (br_if $malformed (i32.gt_u (local.get $fn_len) (i32.sub (local.get $end) (local.get $fn))))
          (local.set $pos (i32.add (local.get $fn) (local.get $fn_len)))
          (br_if $malformed (i32.lt_u (i32.sub (local.get $end) (local.get $pos)) (i32.const 4)))
          (local.set $in_len (i32.load (local.get $pos)))
          (local.set $in (i32.add (local.get $pos) (i32.const 4)))
          (br_if $malformed (i32.gt_u (local.get $in_len) (i32.sub (local.get $end) (local.get $in))))
          (local.set $pos (i32.add (local.get $in) (local.get $in_len)))
          (call $run (local.get $fn) (local.get $fn_len) (local.get $in) (local.get $in_len))
          (br $next)))
      (global.set $heap (global.get $heap_base))
      (return))
    (call $result (i32.const 1) (i32.const 160) (i32.const 56))
    (global.set $heap (global.get $heap_base)))
)
