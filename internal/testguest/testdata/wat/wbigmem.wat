;; wbigmem: an SDK module whose memory's minimum is 1280 pages (80 MiB), so
;; that under a smaller cap it cannot even be instantiated. One handler, ok,
;; which returns "ok".
(module
  (import "safepool" "result" (func $result (param i32 i32 i32)))

  (memory (export "memory") 1280)

  (data (i32.const 0) "ok")

  (func (export "safepool_abi_version") (result i32)
    (i32.const 1))

  ;; Inputs are small: every allocation gets the same 60 KiB at 4096.
  (func (export "safepool_alloc") (param $size i32) (result i32)
    (i32.const 4096))

  (func (export "safepool_call") (param i32 i32 i32 i32)
    (call $result (i32.const 0) (i32.const 0) (i32.const 2)))

  (func (export "safepool_handlers")
    (call $result (i32.const 0) (i32.const 0) (i32.const 2))))
