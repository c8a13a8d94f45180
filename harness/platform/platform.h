/* mallet platform layer: every Linux/CPU-specific call the harness makes goes through here.
 *
 * The recorder uses these from inside malloc hooks, so everything here must be async-signal-safe
 * and must never allocate: raw syscalls and stack buffers only. */
#ifndef MALLET_PLATFORM_H
#define MALLET_PLATFORM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A cheap, cross-core-consistent cycle counter (TSC on x86-64, CNTVCT on aarch64, the monotonic
 * clock in ns elsewhere). Trace timestamps are in these units; the reader converts them to ns
 * with the (cycles, ns) clock pairs stored in every chunk header. */
static inline uint64_t mallet_cycles(void)
{
#if defined(__x86_64__) || defined(__i386__)
    uint32_t lo, hi;
    __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
#elif defined(__aarch64__)
    uint64_t v;
    __asm__ __volatile__("mrs %0, cntvct_el0" : "=r"(v));
    return v;
#else
    extern uint64_t mallet_now_ns(void);
    return mallet_now_ns();
#endif
}

/* A reading of the same counter taken after every earlier load has completed: a plain `rdtsc`
 * may run ahead of them, speculatively, and read a time before the value it depends on arrived
 * (the recorder's free of a pointer another thread just handed over). Costs 14-26 ns on the VMs
 * this was measured on, against 12-13 for `rdtsc` alone (bench/clock_cost). */
static inline uint64_t mallet_cycles_after_loads(void)
{
#if defined(__x86_64__) || defined(__i386__)
    uint32_t lo, hi;
    __asm__ __volatile__("lfence\n\trdtsc" : "=a"(lo), "=d"(hi) : : "memory");
    return ((uint64_t)hi << 32) | lo;
#elif defined(__aarch64__)
    uint64_t v;
    __asm__ __volatile__("isb\n\tmrs %0, cntvct_el0" : "=r"(v) : : "memory");
    return v;
#else
    return mallet_cycles();
#endif
}

/* A reading that no earlier instruction comes after and no later one comes before: also, a load
 * after it sees memory no older than the reading, and a reading after a compare-and-swap is later
 * than the swap (the recorder's owner claims rely on both). Costs 27-33 ns (bench/clock_cost). */
static inline uint64_t mallet_cycles_ordered(void)
{
    uint64_t v = mallet_cycles_after_loads();
#if defined(__x86_64__) || defined(__i386__)
    __asm__ __volatile__("lfence" : : "r"(v) : "memory"); /* after rdtsc has produced v */
#elif defined(__aarch64__)
    __asm__ __volatile__("isb" : : "r"(v) : "memory");
#endif
    return v;
}

/* Asymmetric fences (membarrier(2)): after mallet_membarrier_register(), cheap while the process
 * has one thread, mallet_membarrier() returns once every other running thread of the process has
 * passed a full memory barrier, so those threads need none of their own. Both return 0 or
 * -errno. */
int mallet_membarrier_register(void);
int mallet_membarrier(void);

uint64_t mallet_now_ns(void);      /* CLOCK_MONOTONIC in ns */
uint64_t mallet_realtime_ns(void); /* CLOCK_REALTIME in ns (wall clock, for the file header) */
pid_t mallet_gettid(void);
/* True while the calling thread runs on its alternate signal stack (sigaltstack(2)), which may
 * be small. */
int mallet_on_signal_stack(void);

/* write(2) until done; retries EINTR. Returns 0 or -errno. */
int mallet_write_all(int fd, const void *buf, size_t len);
/* pread(2) of len bytes at off until done; retries EINTR. Returns 0 or -errno (-EIO: the file
 * ends first). */
int mallet_pread_all(int fd, void *buf, size_t len, uint64_t off);
/* writev(2) of two pieces until done. Returns 0 or -errno. */
int mallet_write2(int fd, const void *a, size_t alen, const void *b, size_t blen);
/* Reads at most cap-1 bytes of a (small, /proc-like) file into buf and NUL-terminates it.
 * Returns the byte count or -errno. */
ssize_t mallet_read_small_file(const char *path, char *buf, size_t cap);
/* Resident set size in bytes from an open /proc/self/statm descriptor (pread), or 0. */
uint64_t mallet_rss_bytes(int statm_fd);
/* Moves fd (closing it) to the lowest free descriptor from 700 on (from 8 below the limit where
 * the descriptor limit is 700 or less), close-on-exec: clear of the low ones that programs count
 * on (the first file a program opens is 3, recorded or not), dup2 over and shells redirect.
 * Returns the new descriptor, or fd where it cannot move. */
int mallet_high_fd(int fd);
/* Anonymous private memory straight from the kernel, never from malloc (len 0 maps a byte).
 * NULL on failure. */
void *mallet_map(size_t len);
void mallet_unmap(void *p, size_t len);
size_t mallet_page_size(void);
/* n thread stacks of size bytes each (a multiple of the page size), each above a guard page that
 * faults: stack i starts at base + i * (size + page) + page. Address space only until touched.
 * NULL on failure; mallet_unmap(base, n * (size + page)) gives them back. */
void *mallet_map_stacks(size_t n, size_t size);
/* The first function named name in the objects loaded after the one that holds self (any
 * address in it), in load order: what dlsym(RTLD_NEXT, name) finds from there, and also in
 * objects dlopen'd into a local scope; or, !after, in the objects loaded before it (is self's
 * definition the one in effect?). Unlike dlsym it allocates nothing and leaves the thread's
 * dlerror state alone: a dlsym made inside a hook leaves its error message (or clears the
 * program's) in that state, for the program's dlerror() to return, or its next dl call to free
 * (a free of a block the trace never saw made). Reads the objects' dynamic symbol tables (GNU
 * hash); NULL if none defines it. Takes the loader's lock (dl_iterate_phdr): not for signal
 * handlers. */
void *mallet_find_function(const char *name, const void *self, int after);
/* The path of the first loaded object (in load order; not self's, any address in it) with a GOT
 * slot, of a call (JUMP_SLOT) or of an address taken (GLOB_DAT), that binds names[i] to addrs[i]:
 * an object whose calls of that function reach addrs[i] directly, not the definition the
 * program's others reach (a library loaded with RTLD_DEEPBIND, which looks in its own
 * dependencies, the C library, before the preloaded ones). A lazily bound slot not called yet
 * still points into its object, and is not seen. NULL if none. Takes the loader's lock
 * (dl_iterate_phdr): not for signal handlers. */
const char *mallet_find_direct_binding(const char *const *names, void *const *addrs, size_t n,
                                       const void *self);
/* Looks a shared library up by soname in LD_LIBRARY_PATH and the system's library directories
 * (without loading it). Writes its path to out; returns 0, or -ENOENT. */
int mallet_find_library(const char *soname, char *out, size_t cap);

/* ---- For the replay worker only (not async-signal-safe, never used by the recorder) ---- */

/* The resident-set high-water mark: reset to the current RSS (/proc/self/clear_refs), and read
 * (VmHWM in /proc/self/status). Both return 0 or -errno; peak is in bytes. */
int mallet_rss_peak_reset(void);
int mallet_rss_peak(uint64_t *peak);

/* Counted syscalls (syscount_linux.c), in the order of the results. */
enum mallet_sc_kind {
    MALLET_SC_MMAP,
    MALLET_SC_MUNMAP,
    MALLET_SC_MREMAP,
    MALLET_SC_BRK,
    MALLET_SC_MADVISE,
    MALLET_SC_MPROTECT,
    MALLET_SC_COUNT_
};
const char *mallet_sc_name(unsigned kind);
/* Starts counting the calling thread's MALLET_SC_* syscalls and those of the threads it creates
 * from now on (threads that exist already are not counted). Returns 0 or -errno (-ENOSYS: not
 * on this CPU; -EINVAL: a kernel without seccomp user notifications). Once per process. */
int mallet_syscount_start(void);
/* Only syscalls made while the window is open are counted. */
void mallet_syscount_window(int open);
void mallet_syscount_read(uint64_t counts[MALLET_SC_COUNT_]);

#endif
