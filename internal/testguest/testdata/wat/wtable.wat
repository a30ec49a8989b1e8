;; wtable: a hand-written safepool SDK module (ABI v1) that makes the worker
;; allocate host memory outside linear memory, where the memory cap does not
;; reach. Handlers:
;;
;;   grow  calls table.grow on a funcref table, by the little-endian u32 in
;;         the input's first four bytes, until it returns -1, then traps. Each
;;         table entry costs the worker 8 bytes of its own heap, so a large
;;         step asks the host for gigabytes at once: only the worker's
;;         address-space limit (RLIMIT_AS) stops it. Never run it on a worker
;;         without that limit.
;;   size  returns the table's size in entries, in decimal.
;;   ok    returns "ok".
;;
;; Memory layout: constant strings below 1024, the output buffer at 3072 and a
;; bump heap from 4096 that safepool_call resets when it returns.
(module
  (import "safepool" "result" (func $result (param i32 i32 i32)))

  (memory (export "memory") 1)
  (table $t 1 funcref)

  (data (i32.const 0) "grow\0asize\0aok") ;; 12 bytes: the handler list
  (data (i32.const 128) "grow")
  (data (i32.const 144) "size")
  (data (i32.const 160) "ok")
  (data (i32.const 384) "unknown function") ;; 16 bytes

  (global $heap_base i32 (i32.const 4096))
  (global $heap (mut i32) (i32.const 4096))

  (func (export "safepool_abi_version") (result i32)
    (i32.const 1))

  (func $alloc (export "safepool_alloc") (param $size i32) (result i32)
    (local $ptr i32) (local $end i32) (local $need i32)
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

  ;; $is: 1 if the name at $a ($alen bytes) equals the NUL-padded constant at $b.
  (func $is (param $a i32) (param $alen i32) (param $b i32) (result i32)
    (local $i i32)
    (if (i32.gt_u (local.get $alen) (i32.const 15))
      (then (return (i32.const 0))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $alen)))
        (if (i32.ne (i32.load8_u (i32.add (local.get $a) (local.get $i)))
                    (i32.load8_u (i32.add (local.get $b) (local.get $i))))
          (then (return (i32.const 0))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.eqz (i32.load8_u (i32.add (local.get $b) (local.get $alen)))))

  ;; $itoa writes $n in decimal at $at and returns the number of bytes.
  (func $itoa (param $n i32) (param $at i32) (result i32)
    (local $len i32) (local $m i32) (local $i i32)
    (local.set $m (local.get $n))
    (loop $count
      (local.set $len (i32.add (local.get $len) (i32.const 1)))
      (local.set $m (i32.div_u (local.get $m) (i32.const 10)))
      (br_if $count (i32.ne (local.get $m) (i32.const 0))))
    (local.set $m (local.get $n))
    (local.set $i (local.get $len))
    (loop $digit
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (i32.store8 (i32.add (local.get $at) (local.get $i))
                  (i32.add (i32.const 48) (i32.rem_u (local.get $m) (i32.const 10))))
      (local.set $m (i32.div_u (local.get $m) (i32.const 10)))
      (br_if $digit (i32.gt_u (local.get $i) (i32.const 0))))
    (local.get $len))

  ;; $grow grows the table by $step entries until it cannot, then traps.
  (func $grow (param $step i32)
    (block $full
      (loop $more
        (br_if $full (i32.eq (table.grow $t (ref.null func) (local.get $step)) (i32.const -1)))
        (br $more)))
    (unreachable))

  (func $run (param $fn i32) (param $fn_len i32) (param $in i32) (param $in_len i32)
    (if (call $is (local.get $fn) (local.get $fn_len) (i32.const 128))
      (then
        (if (i32.lt_u (local.get $in_len) (i32.const 4))
          (then (unreachable)))
        (call $grow (i32.load (local.get $in)))
        (return)))
    (if (call $is (local.get $fn) (local.get $fn_len) (i32.const 144))
      (then
        (call $result (i32.const 0) (i32.const 3072) (call $itoa (table.size $t) (i32.const 3072)))
        (return)))
    (if (call $is (local.get $fn) (local.get $fn_len) (i32.const 160))
      (then
        (call $result (i32.const 0) (i32.const 160) (i32.const 2))
        (return)))
    (call $result (i32.const 2) (i32.const 384) (i32.const 16)))

  (func (export "safepool_call") (param $fn i32) (param $fn_len i32) (param $in i32) (param $in_len i32)
    (call $run (local.get $fn) (local.get $fn_len) (local.get $in) (local.get $in_len))
    (global.set $heap (global.get $heap_base)))

  (func (export "safepool_handlers")
    (call $result (i32.const 0) (i32.const 0) (i32.const 12)))
)
