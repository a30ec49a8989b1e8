// csquare is a plugin written in C: an SDK module (guest/ABI.md) built with
// clang, lld and wasi-libc as a WASI reactor; see ../../gen.go. The same
// source is a fixture of the engines' conformance suite
// (internal/testguest/testdata/c). Handlers:
//
//	square  ASCII decimal n in, n*n out
//	env     the value of the granted GREETING variable, or "unset"
//	upper   calls the host function "upper" on its input: "got:<output>",
//	        or "host error: <message>" when the call fails
//	fail    returns the error "boom: <input>"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((import_module("safepool"), import_name("result")))
void safepool_result(int32_t status, const void *ptr, int32_t len);

__attribute__((import_module("safepool"), import_name("host_call")))
int32_t safepool_host_call(const void *name, int32_t name_len, const void *in, int32_t in_len);

__attribute__((import_module("safepool"), import_name("host_take")))
void safepool_host_take(void *ptr);

// Blocks from safepool_alloc stay valid until the next safepool_call
// returns; they are freed then.
static void *blocks[64];
static int nblocks;

__attribute__((export_name("safepool_abi_version")))
int32_t safepool_abi_version(void) { return 1; }

__attribute__((export_name("safepool_alloc")))
void *safepool_alloc(int32_t size) {
	if (nblocks == 64) return 0;
	void *p = malloc(size > 0 ? (size_t)size : 1);
	if (p) blocks[nblocks++] = p;
	return p;
}

static void free_blocks(void) {
	for (int i = 0; i < nblocks; i++) free(blocks[i]);
	nblocks = 0;
}

static void ok(const char *s, size_t n) { safepool_result(0, s, (int32_t)n); }

static int is(const char *fn, int32_t len, const char *name) {
	return (size_t)len == strlen(name) && memcmp(fn, name, (size_t)len) == 0;
}

__attribute__((export_name("safepool_call")))
void safepool_call(const char *fn, int32_t fn_len, const char *in, int32_t in_len) {
	char buf[256];
	if (is(fn, fn_len, "square")) {
		long long n = 0;
		for (int32_t i = 0; i < in_len; i++) {
			if (in[i] < '0' || in[i] > '9') {
				const char *msg = "square: input is not a decimal number";
				safepool_result(1, msg, (int32_t)strlen(msg));
				goto done;
			}
			n = n * 10 + (in[i] - '0');
		}
		int k = snprintf(buf, sizeof buf, "%lld", n * n);
		ok(buf, (size_t)k);
	} else if (is(fn, fn_len, "env")) {
		const char *v = getenv("GREETING");
		if (!v) v = "unset";
		ok(v, strlen(v));
	} else if (is(fn, fn_len, "upper")) {
		int32_t n = safepool_host_call("upper", 5, in, in_len);
		int failed = n < 0;
		if (failed) n = -1 - n;
		const char *prefix = failed ? "host error: " : "got:";
		size_t pn = strlen(prefix);
		char *out = malloc(pn + (size_t)n + 1);
		memcpy(out, prefix, pn);
		safepool_host_take(out + pn);
		ok(out, pn + (size_t)n);
		free(out);
	} else if (is(fn, fn_len, "fail")) {
		int k = snprintf(buf, sizeof buf, "boom: %.*s", (int)in_len, in);
		safepool_result(1, buf, k);
	} else {
		const char *msg = "unknown function; this module has: env, fail, square, upper";
		safepool_result(2, msg, (int32_t)strlen(msg));
	}
done:
	free_blocks();
}

__attribute__((export_name("safepool_handlers")))
void safepool_handlers(void) {
	const char *names = "square\nenv\nupper\nfail";
	safepool_result(0, names, (int32_t)strlen(names));
}
