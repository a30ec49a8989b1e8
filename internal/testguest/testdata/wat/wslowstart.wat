;; wslowstart: an SDK module whose _initialize never returns when memory can
;; grow by 16 pages (1 MiB), and returns at once when it cannot. Under a cap
;; of one page (64 KiB) it starts; an instance made under a larger cap runs
;; past any start timeout. One handler, ok, which returns "ok".
(module
  (import "safepool" "result" (func $result (param i32 i32 i32)))

  (memory (export "memory") 1)

  (data (i32.const 0) "ok")

  (func (export "_initialize")
    (if (i32.ne (memory.grow (i32.const 16)) (i32.const -1))
      (then (loop $spin (br $spin)))))

  (func (export "safepool_abi_version") (result i32)
    (i32.const 1))

  ;; Inputs are small: every allocation gets the same 60 KiB at 4096.
  (func (export "safepool_alloc") (param $size i32) (result i32)
    (i32.const 4096))

  (func (export "safepool_call") (param i32 i32 i32 i32)
    (call $result (i32.const 0) (i32.const 0) (i32.const 2)))

  (func (export "safepool_handlers")
    (call $result (i32.const 0) (i32.const 0) (i32.const 2))))
