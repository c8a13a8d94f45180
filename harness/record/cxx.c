/* C++'s operator new and delete (their Itanium C++ ABI names), hooked so that an event's callsite
 * is the code that said `new` or `delete`: libstdc++'s operators call malloc and free from one
 * place for every C++ allocation, which told a C++ program's allocation sites apart not at all.
 * A hook records the call as a malloc, an aligned_alloc or a free (stamped after an allocation
 * returns and before a block is given back, as the C hooks are) around the real operator: the
 * next definition, dlsym(RTLD_NEXT), looked up at its first call (a C program may load
 * libstdc++ later). The thread is inside a hook meanwhile, so that the malloc or free the
 * operator makes is not recorded a second time. A program that defines its own operators keeps
 * them: the executable's definitions come before a preloaded library's.
 *
 * A throwing operator new must not throw through a hook that holds the thread's guard (this is
 * C: no cleanup would run, and the thread would record nothing more). So a recorded `new` calls
 * the nothrow form, which is libstdc++'s throwing form inside a try (its malloc, its new-handler
 * loop: the same calls), and on NULL lets the guard go and throws std::bad_alloc itself (with
 * a runtime other than libstdc++, it calls the real throwing operator again, out of the hook); a
 * new nested in another hook (the nothrow form's own call) is the real throwing one, passed
 * through. What differs: a new-handler that throws a class derived from std::bad_alloc is seen
 * by the program as std::bad_alloc itself. */
#define _GNU_SOURCE
#include "hook.h"

#include <dlfcn.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>

/* The operators (and libstdc++'s function that throws std::bad_alloc), by index. */
#define CXX_OPS(X)                                                                                 \
    X(_Znwm)                                                                                       \
    X(_Znam)                                                                                       \
    X(_ZnwmRKSt9nothrow_t)                                                                         \
    X(_ZnamRKSt9nothrow_t)                                                                         \
    X(_ZnwmSt11align_val_t) X(_ZnamSt11align_val_t) X(_ZnwmSt11align_val_tRKSt9nothrow_t)          \
        X(_ZnamSt11align_val_tRKSt9nothrow_t) X(_ZdlPv) X(_ZdaPv) X(_ZdlPvm) X(_ZdaPvm)            \
            X(_ZdlPvRKSt9nothrow_t) X(_ZdaPvRKSt9nothrow_t) X(_ZdlPvSt11align_val_t)               \
                X(_ZdaPvSt11align_val_t) X(_ZdlPvmSt11align_val_t) X(_ZdaPvmSt11align_val_t)       \
                    X(_ZdlPvSt11align_val_tRKSt9nothrow_t) X(_ZdaPvSt11align_val_tRKSt9nothrow_t)  \
                        X(_ZSt17__throw_bad_allocv)
#define AS_INDEX(name) OP##name,
#define AS_NAME(name) #name,
enum { CXX_OPS(AS_INDEX) NOPS };
static const char *const op_names[NOPS] = {CXX_OPS(AS_NAME)};
static void *_Atomic next_ops[NOPS];

/* next_ops[i] when operator i has no definition after ours (libc++ has no
 * std::__throw_bad_alloc): looked up once, not at every call. */
#define NONE ((void *)&next_ops)

/* The next definition of operator i, or NULL when there is none: the operators are then done
 * with the C allocator, as libstdc++ does them. Found at the recorder's start in a C++ program
 * (mallet_cxx_resolve), else at the first call, among every object loaded after the recorder
 * (libstdc++ may be in a dlopen'd library's local scope, which dlsym(RTLD_NEXT) does not
 * search), without dlsym: a dlsym that fails inside a hook leaves its error message in the
 * thread's dlerror state, for the program's dlerror() to return, or its next dl call to free (a
 * free of a block the trace never saw made: `ar` loading its LTO plugin). */
static void *next_fn(int i)
{
    void *f = atomic_load_explicit(&next_ops[i], memory_order_acquire);
    if (MALLET_UNLIKELY(!f)) {
        f = mallet_find_function(op_names[i], (const void *)&next_ops, 1);
        atomic_store_explicit(&next_ops[i], f ? f : NONE, memory_order_release);
    }
    return f == NONE ? NULL : f;
}

/* std::bad_alloc, thrown by libstdc++; an abort where there is no libstdc++ to be found. */
static void throw_bad_alloc(void)
{
    void (*fn)(void) = (void (*)(void))next_fn(OP_ZSt17__throw_bad_allocv);
    if (fn) fn();
    abort();
}

/* libstdc++'s plain operators are malloc and free: new is a malloc of at least a byte (and on
 * NULL, its new-handler loop and the throw), new[] and the sized deletes call the plain ones. So
 * where these are libstdc++'s and nothing defined before the recorder (the executable) replaces
 * them or malloc and free, the hooks call the real malloc and free themselves: a new is then one
 * hook, not three (libstdc++'s operator, its malloc, and for the nothrow call the throwing one
 * inside it), which is what a C++ program allocates through most. Decided at the recorder's start
 * (mallet_cxx_resolve), or at the first call in a program that loads libstdc++ later. */
static _Atomic int direct_known; /* 0: not yet, 1: direct, 2: through the real operators */

/* Whether the file at path is named prefix... (libstdc++.so.6 for "libstdc++.so") */
static int named(const char *path, const char *prefix)
{
    const char *base = path ? strrchr(path, '/') : NULL;
    base = base ? base + 1 : path;
    return base && strncmp(base, prefix, strlen(prefix)) == 0;
}

static int in_libstdcxx(int op)
{
    Dl_info info;
    void *fn = next_fn(op);
    return fn && dladdr(fn, &info) && named(info.dli_fname, "libstdc++.so");
}

static int direct(void)
{
    int known = atomic_load_explicit(&direct_known, memory_order_relaxed);
    if (MALLET_LIKELY(known)) return known == 1;
    static const char *const ours[] = {"_Znwm", "_ZdlPv", "malloc", "free"}; /* none before us */
    static const int libstdcxx[] = {OP_Znwm, OP_Znam, OP_ZdlPv, OP_ZdaPv, OP_ZdlPvm, OP_ZdaPvm};
    int ok = 1;
    for (size_t i = 0; ok && i < sizeof ours / sizeof ours[0]; i++)
        ok = !mallet_find_function(ours[i], &direct_known, 0);
    for (size_t i = 0; ok && i < sizeof libstdcxx / sizeof libstdcxx[0]; i++)
        ok = in_libstdcxx(libstdcxx[i]);
    atomic_store_explicit(&direct_known, ok ? 1 : 2, memory_order_relaxed);
    return ok;
}

static const char nothrow_tag; /* stands for std::nothrow: the operators never look at it */

typedef void *new_nt_fn(size_t, const void *);
typedef void *new_al_nt_fn(size_t, size_t, const void *);

/* The nothrow form fn of operator new (NULL: none found, the C allocator does it), for n bytes
 * aligned to al (0: the default). */
static void *new_nothrow(void *fn, size_t n, size_t al, const void *nt)
{
    if (fn) return al ? ((new_al_nt_fn *)fn)(n, al, nt) : ((new_nt_fn *)fn)(n, nt);
    void *p = NULL;
    if (n == 0) n = 1;
    if (!al) return malloc(n);
    return posix_memalign(&p, al, n) ? NULL : p;
}

/* NAME(PARAMS), whose nothrow form is NOTHROW_NAME; ARGS pass PARAMS on; n is the size, AL the
 * alignment (0: the default), NT the nothrow argument, THROWS whether NAME throws, PLAIN whether
 * it is one of libstdc++'s malloc-and-free operators (direct()). */
#define NEW_HOOK(name, nothrow_name, params, args, al, nt, throws, plain)                          \
    EXPORT void *name params                                                                       \
    {                                                                                              \
        mallet_tstate_t *t = enter();                                                              \
        if (!t) { /* nested in a hook, or not recording: the real operator, as it is */            \
            void *(*fn)params = (void *(*)params)next_fn(OP##name);                                \
            if (fn) return fn args;                                                                \
            void *p = new_nothrow(NULL, n, al, nt);                                                \
            if (!p && (throws)) throw_bad_alloc();                                                 \
            return p;                                                                              \
        }                                                                                          \
        void *p = (plain) && direct() ? mallet_real.malloc(n ? n : 1) : NULL;                      \
        if (!p) p = new_nothrow(next_fn(OP##nothrow_name), n, al, nt);                             \
        rec_alloc(t, (al) ? MALLET_OP_ALIGNED_ALLOC : MALLET_OP_MALLOC, p, n, al, CALLSITE());     \
        leave(t);                                                                                  \
        if (!p && (throws)) {                                                                      \
            /* another C++ runtime's exception: its own operator, called again out of the hook */  \
            void *(*fn)params = (void *(*)params)next_fn(OP##name);                                \
            if (fn && !next_fn(OP_ZSt17__throw_bad_allocv)) return fn args;                        \
            throw_bad_alloc();                                                                     \
        }                                                                                          \
        return p;                                                                                  \
    }

/* std::nothrow_t and std::align_val_t pass as a pointer and a size_t. */
NEW_HOOK(_Znwm, _ZnwmRKSt9nothrow_t, (size_t n), (n), 0, &nothrow_tag, 1, 1)
NEW_HOOK(_Znam, _ZnamRKSt9nothrow_t, (size_t n), (n), 0, &nothrow_tag, 1, 1)
NEW_HOOK(_ZnwmRKSt9nothrow_t, _ZnwmRKSt9nothrow_t, (size_t n, const void *nt), (n, nt), 0, nt, 0, 0)
NEW_HOOK(_ZnamRKSt9nothrow_t, _ZnamRKSt9nothrow_t, (size_t n, const void *nt), (n, nt), 0, nt, 0, 0)
NEW_HOOK(_ZnwmSt11align_val_t, _ZnwmSt11align_val_tRKSt9nothrow_t, (size_t n, size_t al), (n, al),
         al, &nothrow_tag, 1, 0)
NEW_HOOK(_ZnamSt11align_val_t, _ZnamSt11align_val_tRKSt9nothrow_t, (size_t n, size_t al), (n, al),
         al, &nothrow_tag, 1, 0)
NEW_HOOK(_ZnwmSt11align_val_tRKSt9nothrow_t, _ZnwmSt11align_val_tRKSt9nothrow_t,
         (size_t n, size_t al, const void *nt), (n, al, nt), al, nt, 0, 0)
NEW_HOOK(_ZnamSt11align_val_tRKSt9nothrow_t, _ZnamSt11align_val_tRKSt9nothrow_t,
         (size_t n, size_t al, const void *nt), (n, al, nt), al, nt, 0, 0)

/* NAME(PARAMS) calls the next definition with ARGS; p is the block; PLAIN as for NEW_HOOK. */
#define DELETE_HOOK(name, params, args, plain)                                                     \
    EXPORT void name params                                                                        \
    {                                                                                              \
        mallet_tstate_t *t = enter();                                                              \
        if (t) {                                                                                   \
            EVENT(MALLET_OP_FREE, 0);                                                              \
            ev.cycles = mallet_stamp(t, (uintptr_t)p, 1);                                          \
            ev.ptr = (uintptr_t)p;                                                                 \
            mallet_rec_event(t, &ev);                                                              \
        }                                                                                          \
        if (t && (plain) && direct()) {                                                            \
            mallet_real.free(p);                                                                   \
        } else {                                                                                   \
            void(*fn) params = (void(*) params)next_fn(OP##name);                                  \
            if (fn)                                                                                \
                fn args;                                                                           \
            else                                                                                   \
                free(p);                                                                           \
        }                                                                                          \
        if (t) leave(t);                                                                           \
    }

DELETE_HOOK(_ZdlPv, (void *p), (p), 1)
DELETE_HOOK(_ZdaPv, (void *p), (p), 1)
DELETE_HOOK(_ZdlPvm, (void *p, size_t n), (p, n), 1)
DELETE_HOOK(_ZdaPvm, (void *p, size_t n), (p, n), 1)
DELETE_HOOK(_ZdlPvRKSt9nothrow_t, (void *p, const void *nt), (p, nt), 0)
DELETE_HOOK(_ZdaPvRKSt9nothrow_t, (void *p, const void *nt), (p, nt), 0)
DELETE_HOOK(_ZdlPvSt11align_val_t, (void *p, size_t al), (p, al), 0)
DELETE_HOOK(_ZdaPvSt11align_val_t, (void *p, size_t al), (p, al), 0)
DELETE_HOOK(_ZdlPvmSt11align_val_t, (void *p, size_t n, size_t al), (p, n, al), 0)
DELETE_HOOK(_ZdaPvmSt11align_val_t, (void *p, size_t n, size_t al), (p, n, al), 0)
DELETE_HOOK(_ZdlPvSt11align_val_tRKSt9nothrow_t, (void *p, size_t al, const void *nt), (p, al, nt),
            0)
DELETE_HOOK(_ZdaPvSt11align_val_tRKSt9nothrow_t, (void *p, size_t al, const void *nt), (p, al, nt),
            0)

static int is_cxx_runtime(struct dl_phdr_info *info, size_t size, void *arg)
{
    return named(info->dlpi_name, "libstdc++.so") || named(info->dlpi_name, "libc++.so");
}

void mallet_cxx_resolve(void)
{
    /* Only where a C++ runtime is loaded already (a look at the loaded objects' names: a failed
     * dlsym cost a C program's start ~25 us). Looked up later, at an operator's first call,
     * dlsym could wait on the loader's lock held by a thread that waits on this one. */
    if (!dl_iterate_phdr(is_cxx_runtime, NULL)) return;
    for (int i = 0; i < NOPS; i++)
        next_fn(i);
    direct();
}
