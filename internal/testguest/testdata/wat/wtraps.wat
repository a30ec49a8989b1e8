;; wtraps: a hand-written safepool SDK module (ABI v1) whose handlers trap.
;; Handlers:
;;
;;   divzero      executes i32.div_s with a zero divisor.
;;   ok           returns "ok", so a batch can mix traps with good tasks.
;;   overflow     recurses without bound until the call stack overflows.
;;   unreachable  executes unreachable.
;;
;; Memory layout: constant strings below 1024 and a bump heap from 4096 that
;; safepool_call and safepool_batch reset when they return.
(module
  (import "safepool" "result" (func $result (param i32 i32 i32)))

  (memory (export "memory") 1)

  (data (i32.const 0) "divzero\nok\noverflow\nunreachable") ;; 31 bytes: the handler list
  (data (i32.const 32) "unknown function \22") ;; 18 bytes
  (data (i32.const 64) "\22; this module has: divzero, ok, overflow, unreachable") ;; 54 bytes
  (data (i32.const 128) "malformed batch: a record runs past the end of the batch") ;; 56 bytes

  (global $heap_base i32 (i32.const 4096))
  (global $heap (mut i32) (i32.const 4096))

  ;; $zero is mutable so that no engine can fold the division away.
  (global $zero (mut i32) (i32.const 0))

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

  ;; $unknown reports status 2: unknown function "<name>"; this module has: divzero, ok, overflow, unreachable
  (func $unknown (param $fn i32) (param $fn_len i32)
    (local $msg i32)
    (local.set $msg (call $alloc (i32.add (local.get $fn_len) (i32.const 72))))
    (if (i32.eqz (local.get $msg))
      (then
        (call $result (i32.const 2) (i32.const 32) (i32.const 16))
        (return)))
    (memory.copy (local.get $msg) (i32.const 32) (i32.const 18))
    (memory.copy (i32.add (local.get $msg) (i32.const 18)) (local.get $fn) (local.get $fn_len))
    (memory.copy (i32.add (i32.add (local.get $msg) (i32.const 18)) (local.get $fn_len))
                 (i32.const 64) (i32.const 54))
    (call $result (i32.const 2) (local.get $msg) (i32.add (local.get $fn_len) (i32.const 72))))

  ;; $recurse never returns: it needs its callee's result.
  (func $recurse (param $n i32) (result i32)
    (i32.add (call $recurse (i32.add (local.get $n) (i32.const 1))) (i32.const 1)))

  ;; $run dispatches one task by function name.
  (func $run (param $fn i32) (param $fn_len i32) (param $in i32) (param $in_len i32)
    (if (call $eq (local.get $fn) (local.get $fn_len) (i32.const 0) (i32.const 7))
      (then
        (drop (i32.div_s (i32.const 1) (global.get $zero)))
        (return)))
    (if (call $eq (local.get $fn) (local.get $fn_len) (i32.const 8) (i32.const 2))
      (then
        (call $result (i32.const 0) (i32.const 8) (i32.const 2))
        (return)))
    (if (call $eq (local.get $fn) (local.get $fn_len) (i32.const 11) (i32.const 8))
      (then
        (drop (call $recurse (i32.const 0)))
        (return)))
    (if (call $eq (local.get $fn) (local.get $fn_len) (i32.const 20) (i32.const 11))
      (then
        (unreachable)))
    (call $unknown (local.get $fn) (local.get $fn_len)))

  (func (export "safepool_call") (param $fn i32) (param $fn_len i32) (param $in i32) (param $in_len i32)
    (call $run (local.get $fn) (local.get $fn_len) (local.get $in) (local.get $in_len))
    (global.set $heap (global.get $heap_base)))

  (func (export "safepool_handlers")
    (call $result (i32.const 0) (i32.const 0) (i32.const 31)))

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
    (call $result (i32.const 1) (i32.const 128) (i32.const 56))
    (global.set $heap (global.get $heap_base)))
)
