;; wgrow: a hand-written safepool SDK module (ABI v1) for memory caps. It has
;; no safepool_batch export, so a host drives it one safepool_call per task.
;; Handlers:
;;
;;   grow  calls memory.grow 1 until it returns -1, then executes unreachable.
;;         Run it only under a memory cap: without one it takes 4 GiB.
;;   ok    returns "ok".
;;
;; Memory layout: constant strings below 1024 and a bump heap from 4096 that
;; safepool_call resets when it returns.
(module
  (import "safepool" "result" (func $result (param i32 i32 i32)))

  (memory (export "memory") 1)

  (data (i32.const 0) "grow\nok") ;; 7 bytes: the handler list
  (data (i32.const 16) "unknown function \22") ;; 18 bytes
  (data (i32.const 48) "\22; this module has: grow, ok") ;; 28 bytes

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

  ;; $unknown reports status 2: unknown function "<name>"; this module has: grow, ok
  (func $unknown (param $fn i32) (param $fn_len i32)
    (local $msg i32)
    (local.set $msg (call $alloc (i32.add (local.get $fn_len) (i32.const 46))))
    (if (i32.eqz (local.get $msg))
      (then
        (call $result (i32.const 2) (i32.const 16) (i32.const 16))
        (return)))
    (memory.copy (local.get $msg) (i32.const 16) (i32.const 18))
    (memory.copy (i32.add (local.get $msg) (i32.const 18)) (local.get $fn) (local.get $fn_len))
    (memory.copy (i32.add (i32.add (local.get $msg) (i32.const 18)) (local.get $fn_len))
                 (i32.const 48) (i32.const 28))
    (call $result (i32.const 2) (local.get $msg) (i32.add (local.get $fn_len) (i32.const 46))))

  ;; $grow takes every page the host allows, then traps.
  (func $grow
    (block $full
      (loop $more
        (br_if $full (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
        (br $more)))
    (unreachable))

  ;; $run dispatches one task by function name.
  (func $run (param $fn i32) (param $fn_len i32) (param $in i32) (param $in_len i32)
    (if (call $eq (local.get $fn) (local.get $fn_len) (i32.const 0) (i32.const 4))
      (then
        (call $grow)
        (return)))
    (if (call $eq (local.get $fn) (local.get $fn_len) (i32.const 5) (i32.const 2))
      (then
        (call $result (i32.const 0) (i32.const 5) (i32.const 2))
        (return)))
    (call $unknown (local.get $fn) (local.get $fn_len)))

  (func (export "safepool_call") (param $fn i32) (param $fn_len i32) (param $in i32) (param $in_len i32)
    (call $run (local.get $fn) (local.get $fn_len) (local.get $in) (local.get $in_len))
    (global.set $heap (global.get $heap_base)))

  (func (export "safepool_handlers")
    (call $result (i32.const 0) (i32.const 0) (i32.const 7)))
)
