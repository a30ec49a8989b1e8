;; wbadimport: imports env.foo, which the sandbox does not provide. A worker
;; must reject it at load time with an error that names the import.
(module
  (import "env" "foo" (func $foo))

  (memory (export "memory") 1)

  (func (export "safepool_abi_version") (result i32)
    (i32.const 1))

  (func (export "safepool_call") (param i32 i32 i32 i32)
    (call $foo))
)
