;; countcalls: an SDK module (ABI v1) that keeps state between calls on
;; purpose and ignores the function name it is given, against the ABI, which
;; asks for status 2 on a name that is no handler's. Every safepool_call
;; counts itself in a global and reports the count, "1" to "9" then "9".
;; The tests of FreshInstance use it to show that a call the worker makes
;; before the snapshot (its warm-up) is never seen by a task when the guest
;; does not answer it as an unknown function.
(module
  (import "safepool" "result" (func $result (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "count")
  (global $calls (mut i32) (i32.const 0))

  (func (export "safepool_abi_version") (result i32) (i32.const 1))
  (func (export "safepool_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "safepool_handlers") (call $result (i32.const 0) (i32.const 0) (i32.const 5)))
  (func (export "safepool_call") (param i32 i32 i32 i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (i32.store8 (i32.const 16)
      (i32.add (i32.const 48)
        (select (global.get $calls) (i32.const 9) (i32.lt_u (global.get $calls) (i32.const 9)))))
    (call $result (i32.const 0) (i32.const 16) (i32.const 1))))
