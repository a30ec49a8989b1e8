;; wcmd: a WASI command module. _start writes "hi\n" to stdout with fd_write
;; and returns, which is exit code 0.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param $fd i32) (param $iovs i32) (param $iovs_len i32) (param $nwritten i32) (result i32)))

  (memory (export "memory") 1)

  ;; One iovec at 0 pointing at the text at 16; fd_write stores the count at 8.
  (data (i32.const 16) "hi\n")

  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 3))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
)
