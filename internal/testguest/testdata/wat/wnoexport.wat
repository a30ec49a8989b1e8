;; wnoexport: a valid module that is neither kind of task module: it exports
;; no _start and no safepool_abi_version.
(module
  (memory (export "memory") 1)

  (func (export "answer") (result i32)
    (i32.const 42))
)
