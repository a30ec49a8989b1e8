;; wbadsig: claims to be an SDK module, but its exports have the wrong types:
;; safepool_abi_version is (i32) -> i32 instead of () -> i32, and
;; safepool_call is (i32) -> i32 instead of (i32, i32, i32, i32) -> ().
(module
  (memory (export "memory") 1)

  (func (export "safepool_abi_version") (param i32) (result i32)
    (i32.const 1))

  (func (export "safepool_call") (param i32) (result i32)
    (i32.const 0))
)
