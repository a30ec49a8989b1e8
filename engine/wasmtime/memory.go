//go:build cgo

package wasmtime

/*
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

// The few declarations of wasmtime's C API (v39, wasmtime/config.h and
// error.h) this file needs. They are repeated here because the headers live
// in wasmtime-go's module directory, which no #include path can name; the
// symbols come from the libwasmtime.a that wasmtime-go links.
typedef struct wasm_config_t wasm_config_t;
typedef struct wasm_memorytype_t wasm_memorytype_t;
typedef struct wasmtime_error wasmtime_error_t;
typedef uint8_t *(*wasmtime_memory_get_callback_t)(void *env, size_t *byte_size, size_t *byte_capacity);
typedef wasmtime_error_t *(*wasmtime_memory_grow_callback_t)(void *env, size_t new_size);
typedef struct wasmtime_linear_memory {
	void *env;
	wasmtime_memory_get_callback_t get_memory;
	wasmtime_memory_grow_callback_t grow_memory;
	void (*finalizer)(void *);
} wasmtime_linear_memory_t;
typedef wasmtime_error_t *(*wasmtime_new_memory_callback_t)(void *env, const wasm_memorytype_t *ty,
	size_t minimum, size_t maximum, size_t reserved_size_in_bytes, size_t guard_size_in_bytes,
	wasmtime_linear_memory_t *memory_ret);
typedef struct wasmtime_memory_creator {
	void *env;
	wasmtime_new_memory_callback_t new_memory;
	void (*finalizer)(void *);
} wasmtime_memory_creator_t;
extern void wasmtime_config_host_memory_creator_set(wasm_config_t *, wasmtime_memory_creator_t *);
extern wasmtime_error_t *wasmtime_error_new(const char *);

// sp_mem is one linear memory under a cap. The reservation is made once,
// inaccessible, and pages become accessible as the memory grows, so the
// memory never moves: compiled code that relies on the reservation and its
// guard pages (wasmtime's default for 32-bit memories) stays correct.
typedef struct sp_mem {
	uint8_t *base;
	size_t size;     // accessible bytes: the memory's current size
	size_t reserve;  // bytes the memory may grow to without moving
	size_t mapped;   // reserve plus the guard region after it
	size_t limit;    // the cap
	size_t peak;     // largest size granted
	int hit;         // a grow past the cap was refused
} sp_mem;

// The worker instantiates one module at a time, on one goroutine: it sets
// sp_next_limit before instantiating and reads sp_last (the memory made) or
// sp_start_hit (the cap refused the memory's initial size) after.
static size_t sp_next_limit;
static sp_mem *sp_last;
static int sp_start_hit;

static void sp_prepare(size_t limit) { sp_next_limit = limit; sp_last = NULL; sp_start_hit = 0; }
static sp_mem *sp_made(void) { return sp_last; }
static int sp_refused(void) { return sp_start_hit; }

static uint8_t *sp_get(void *env, size_t *size, size_t *capacity) {
	sp_mem *m = env;
	*size = m->size;
	*capacity = m->reserve;
	return m->base;
}

static wasmtime_error_t *sp_grow(void *env, size_t n) {
	sp_mem *m = env;
	if (n <= m->size) {
		return NULL;
	}
	if (n > m->limit) {
		m->hit = 1;
		return wasmtime_error_new("safepool: linear memory cap reached");
	}
	if (n > m->reserve || mprotect(m->base + m->size, n - m->size, PROT_READ | PROT_WRITE) != 0) {
		m->hit = 1; // the reservation or the address-space backstop refused it
		return wasmtime_error_new("safepool: cannot grow linear memory");
	}
	m->size = n;
	if (n > m->peak) {
		m->peak = n;
	}
	return NULL;
}

static void sp_free(void *env) {
	sp_mem *m = env;
	munmap(m->base, m->mapped);
	if (sp_last == m) {
		sp_last = NULL;
	}
	free(m);
}

static size_t sp_round(size_t n) {
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	return (n + page - 1) / page * page;
}

static wasmtime_error_t *sp_new(void *env, const wasm_memorytype_t *ty, size_t minimum, size_t maximum,
	size_t reserved, size_t guard, wasmtime_linear_memory_t *ret) {
	size_t limit = sp_next_limit;
	if (minimum > limit) {
		sp_start_hit = 1;
		return wasmtime_error_new("safepool: the memory's initial size is over the cap");
	}
	sp_mem *m = calloc(1, sizeof *m);
	if (m == NULL) {
		return wasmtime_error_new("safepool: out of host memory");
	}
	m->limit = limit;
	// A reservation wasmtime asks for is one its code relies on; without
	// one, reserving the cap is enough, as the memory never grows past it.
	m->reserve = reserved != 0 ? reserved : sp_round(limit > minimum ? limit : minimum);
	if (m->reserve < minimum) {
		m->reserve = minimum;
	}
	m->mapped = m->reserve + guard;
	void *p = mmap(NULL, m->mapped, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		free(m);
		sp_start_hit = 1; // the address-space backstop refused the reservation
		return wasmtime_error_new("safepool: cannot reserve linear memory");
	}
	m->base = p;
	if (minimum > 0 && mprotect(m->base, minimum, PROT_READ | PROT_WRITE) != 0) {
		munmap(m->base, m->mapped);
		free(m);
		sp_start_hit = 1;
		return wasmtime_error_new("safepool: cannot commit linear memory");
	}
	m->size = m->peak = minimum;
	ret->env = m;
	ret->get_memory = sp_get;
	ret->grow_memory = sp_grow;
	ret->finalizer = sp_free;
	sp_last = m;
	return NULL;
}

static void sp_install(void *config) {
	wasmtime_memory_creator_t c = {0};
	c.new_memory = sp_new;
	wasmtime_config_host_memory_creator_set((wasm_config_t *)config, &c);
}
*/
import "C"

import (
	"unsafe"

	"github.com/bytecodealliance/wasmtime-go/v39"
)

// installMemoryCap makes every linear memory of engines built from cfg a
// capped memory (wasmtime's with_host_memory). wasmtime's own cap,
// Store.Limiter, makes memory.grow return -1 past the cap but tells the
// host nothing, and memory_limit needs to know that the cap was hit; this
// creator both refuses the grow and records it, like wazero's memCap.
func installMemoryCap(cfg *wasmtime.Config) {
	// wasmtime-go does not export the C pointer of a Config. Its only field
	// is that pointer (v39.0.1, config.go). The conformance suite's
	// memory tests fail on wasmtime if the creator is not in place.
	p := *(*unsafe.Pointer)(unsafe.Pointer(cfg))
	C.sp_install(p)
}

// capMem is the Go view of one sp_mem. Its fields are read and written only
// between calls into wasmtime, on the worker's goroutine, as are the C
// callbacks that change them, so no locking is needed.
type capMem struct{ m *C.sp_mem }

// prepareMemory sets the cap for the next instantiation.
func prepareMemory(limit uint64) { C.sp_prepare(C.size_t(limit)) }

// madeMemory returns the memory the last instantiation made, and whether the
// cap refused its initial size.
func madeMemory() (capMem, bool) { return capMem{C.sp_made()}, C.sp_refused() != 0 }

func (c capMem) bytes(ptr, n uint32) ([]byte, bool) {
	if c.m == nil || uint64(ptr)+uint64(n) > uint64(c.m.size) {
		return nil, false
	}
	if n == 0 {
		return []byte{}, true
	}
	return unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(c.m.base), ptr)), n), true
}

func (c capMem) hit() bool {
	return c.m != nil && c.m.hit != 0
}

func (c capMem) clearHit() {
	if c.m != nil {
		c.m.hit = 0
	}
}

func (c capMem) peak() uint64 {
	if c.m == nil {
		return 0
	}
	return uint64(c.m.peak)
}
