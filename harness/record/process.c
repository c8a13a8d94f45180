/* The recorder's process lifecycle: start, thread exit, fork, exec, exit, _exit and fatal
 * signals. Each path that ends an image flushes every thread's buffer first, so the trace holds
 * every event up to the end (see docs/RECORDER.md for what a SIGKILL can lose). */
#define _GNU_SOURCE
#include "record.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

__thread mallet_tstate_t mallet_tls __attribute__((tls_model("initial-exec")));
mallet_proc_t mallet_proc;
_Atomic int mallet_ready; /* 0 not started, 1 recording, 2 pass-through (starting, off, failed) */

static _Atomic int init_state; /* 0 not started, 1 running, 2 done */
static pthread_key_t thread_key;
static int have_key;

/* Signals whose default action kills the process: on those we flush, then die the same way. */
static const int fatal_signals[] = {SIGABRT, SIGSEGV, SIGBUS, SIGILL,  SIGFPE,  SIGSYS,  SIGTRAP,
                                    SIGTERM, SIGINT,  SIGHUP, SIGQUIT, SIGPIPE, SIGXCPU, SIGXFSZ};

static void on_thread_exit(void *arg)
{
    mallet_tstate_t *t = arg;
    t->in_hook++;
    mallet_tbuf_release(t, 1);
    t->exited = 1; /* later events of this thread (other TLS destructors) are written singly */
    t->in_hook--;
}

void mallet_thread_register(mallet_tstate_t *t)
{
    if (have_key) pthread_setspecific(thread_key, t);
}

/* The signals whose disposition is the recorder's handler, installed where the program had
 * SIG_DFL (bit sig - 1). The program reads them back as SIG_DFL (the sigaction and signal hooks
 * below): a program that looks before it installs a handler sees what it would see alone.
 * CPython installs its KeyboardInterrupt handler only where SIGINT is SIG_DFL: with ours
 * visible, a recorded python died of Ctrl-C instead of raising KeyboardInterrupt. */
static _Atomic uint64_t ours_mask;

static uint64_t sig_bit(int sig)
{
    return sig > 0 && sig <= 64 ? 1ull << (sig - 1) : 0;
}

typedef int sigaction_fn(int, const struct sigaction *, struct sigaction *);
typedef void (*handler_t)(int);
typedef handler_t signal_fn(int, handler_t);

/* The next definition of name after the recorder's, found without dlsym where it can be (dlsym
 * in a hook would change the program's dlerror() state: platform.h), cached in *cache. */
static void *next_function(void *_Atomic *cache, const char *name)
{
    void *fn = atomic_load_explicit(cache, memory_order_acquire);
    if (!fn) {
        fn = mallet_find_function(name, (const void *)cache, 1);
        if (!fn) fn = dlsym(RTLD_NEXT, name);
        atomic_store_explicit(cache, fn, memory_order_release);
    }
    return fn;
}

static void *_Atomic real_sigaction_fn;

static int real_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    sigaction_fn *fn = (sigaction_fn *)next_function(&real_sigaction_fn, "sigaction");
    if (fn) return fn(sig, act, old);
    errno = ENOSYS;
    return -1;
}

static void on_fatal_signal(int sig, siginfo_t *si, void *uctx)
{
    (void)uctx;
    int saved_errno = errno;
    if (atomic_load(&mallet_ready) == 1 && getpid() == mallet_proc.pid) {
        mallet_tbuf_flush_all(&mallet_tls, 1);
        mallet_tbuf_dying(&mallet_tls);
    }
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    real_sigaction(sig, &dfl, NULL);
    atomic_fetch_and(&ours_mask, ~sig_bit(sig));
    /* A fault re-executes the faulting instruction on return and dies by default. A sent signal
     * (kill, abort, raise) is re-sent: it stays pending while the handler runs and kills the
     * process on return, so the exit status says the same signal. */
    if (si->si_code <= 0 || sig == SIGABRT || sig == SIGTERM || sig == SIGINT || sig == SIGHUP ||
        sig == SIGQUIT || sig == SIGPIPE)
        syscall(SYS_tgkill, getpid(), mallet_gettid(), sig);
    errno = saved_errno;
}

static int is_fatal(int sig)
{
    for (size_t i = 0; i < sizeof fatal_signals / sizeof fatal_signals[0]; i++)
        if (fatal_signals[i] == sig) return 1;
    return 0;
}

static _Atomic int handlers_on; /* recording: SIG_DFL on a fatal signal means ours */

/* Puts the recorder's handler on sig (old: the disposition before, as it was). */
static int put_ours(int sig, struct sigaction *old)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fatal_signal;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    int r = real_sigaction(sig, &sa, old);
    if (r == 0) atomic_fetch_or(&ours_mask, sig_bit(sig));
    return r;
}

static void install_signal_handlers(void)
{
    for (size_t i = 0; i < sizeof fatal_signals / sizeof fatal_signals[0]; i++) {
        struct sigaction old;
        if (real_sigaction(fatal_signals[i], NULL, &old)) continue;
        /* Only where the program has not chosen a disposition: never override its own. */
        if ((old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL) continue;
        put_ours(fatal_signals[i], NULL);
    }
    atomic_store(&handlers_on, 1);
}

/* The program's sigaction, signal and the like on sig: where the recorder's handler is in place
 * they read it as SIG_DFL; a disposition the program sets replaces it, but SIG_DFL on a fatal
 * signal puts the recorder's back (it dies the same way, its trace flushed: CPython restores
 * SIG_DFL and re-raises SIGINT to die of an uncaught KeyboardInterrupt). */
static int dfl_means_ours(int sig)
{
    return is_fatal(sig) && atomic_load(&handlers_on);
}

static void as_program_sees(int was_ours, struct sigaction *old)
{
    if (was_ours && old && (old->sa_flags & SA_SIGINFO) && old->sa_sigaction == on_fatal_signal) {
        memset(old, 0, sizeof *old);
        old->sa_handler = SIG_DFL;
    }
}

EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    int was = (atomic_load(&ours_mask) & sig_bit(sig)) != 0;
    int r;
    if (act && !(act->sa_flags & SA_SIGINFO) && act->sa_handler == SIG_DFL && dfl_means_ours(sig)) {
        r = put_ours(sig, old);
    } else {
        r = real_sigaction(sig, act, old);
        if (r == 0 && act) atomic_fetch_and(&ours_mask, ~sig_bit(sig));
    }
    if (r == 0) as_program_sees(was, old);
    return r;
}

/* signal() and its kin set the disposition through the C library's own sigaction, past the hook
 * above: each is hooked alike (dfl_ours: SIG_DFL puts the recorder's handler; not for sigset,
 * whose SIG_DFL also unblocks the signal). */
static handler_t old_handler(const struct sigaction *old)
{
    return (old->sa_flags & SA_SIGINFO) ? (handler_t)(void (*)(void))old->sa_sigaction
                                        : old->sa_handler;
}

#define SIGNAL_HOOK(name, dfl_ours)                                                                \
    EXPORT handler_t name(int sig, handler_t h)                                                    \
    {                                                                                              \
        static void *_Atomic real;                                                                 \
        struct sigaction old;                                                                      \
        int was = (atomic_load(&ours_mask) & sig_bit(sig)) != 0;                                   \
        if ((dfl_ours) && h == SIG_DFL && dfl_means_ours(sig)) {                                   \
            if (put_ours(sig, &old)) return SIG_ERR;                                               \
            as_program_sees(was, &old);                                                            \
            return old_handler(&old);                                                              \
        }                                                                                          \
        signal_fn *fn = (signal_fn *)next_function(&real, #name);                                  \
        if (!fn) {                                                                                 \
            errno = ENOSYS;                                                                        \
            return SIG_ERR;                                                                        \
        }                                                                                          \
        handler_t r = fn(sig, h);                                                                  \
        if (r != SIG_ERR && was) {                                                                 \
            if (r == (handler_t)(void (*)(void))on_fatal_signal) r = SIG_DFL;                      \
            atomic_fetch_and(&ours_mask, ~sig_bit(sig));                                           \
        }                                                                                          \
        return r;                                                                                  \
    }
SIGNAL_HOOK(signal, 1)
SIGNAL_HOOK(bsd_signal, 1)
SIGNAL_HOOK(sysv_signal, 1)
SIGNAL_HOOK(__sysv_signal, 1) /* signal() of a program built without _DEFAULT_SOURCE (-std=c11) */
SIGNAL_HOOK(sigset, 0)

/* The last fork, as the parent read the clocks just before it (before_fork): the start of a
 * forked child, which inherits them. Read in the child (after_fork_child) the start came late:
 * the parent runs on at once, and makes and frees blocks before the child is scheduled, tens of
 * us later on these VMs; readers then placed those events before the fork, and the child's
 * frees of its copies of them read as frees of unknown pointers (tests/programs/procs.c). */
static uint64_t fork_realtime_ns, fork_ns, fork_cycles;

static void start_clock(int calibrate)
{
    if (!calibrate) { /* a forked child: it started at the fork, and keeps its parent's rates */
        mallet_proc.start_realtime_ns = fork_realtime_ns;
        mallet_proc.start_ns = fork_ns;
        mallet_proc.start_cycles = fork_cycles;
        /* The parent's other threads run on between that reading and the kernel's copy of its
         * memory (tens of us while it copies the page tables): blocks they made meanwhile are
         * in the child, with times after its start. The child's own reading, after the copy,
         * closes that window for readers (META FORK_END_CYCLES). */
        mallet_proc.fork_end_cycles = mallet_cycles_after_loads();
        atomic_store(&mallet_proc.next_rss, mallet_proc.opts.rss_ms ? 0 : UINT64_MAX);
        return;
    }
    mallet_proc.start_realtime_ns = mallet_realtime_ns();
    mallet_proc.start_ns = mallet_now_ns();
    mallet_proc.start_cycles = mallet_cycles();
    /* The cycle rate converts the flush age, the RSS period and the 1 us of a fast event to
     * cycles; 10 us of spinning measures it to about 0.3% (the clock reads in ~30 ns), plenty
     * for those, and a tenth of what the process's start cost the recorder (readers fit the
     * rate to the chunks' clock pairs, and use this one only for traces under 1 ms). */
    uint64_t n0 = mallet_proc.start_ns, c0 = mallet_proc.start_cycles, n1, c1;
    do {
        n1 = mallet_now_ns();
        c1 = mallet_cycles();
    } while (n1 - n0 < 10000);
    double per_ms = (double)(c1 - c0) / ((double)(n1 - n0) / 1e6);
    if (per_ms < 1) per_ms = 1;
    mallet_proc.cycles_per_sec = (uint64_t)(per_ms * 1000.0);
    uint64_t flush_ms = mallet_proc.opts.flush_ms, rss_ms = mallet_proc.opts.rss_ms;
    mallet_proc.flush_cycles = flush_ms ? (uint64_t)(per_ms * (double)flush_ms) : UINT64_MAX / 2;
    mallet_proc.rss_cycles = (uint64_t)(per_ms * (double)rss_ms);
    mallet_proc.fast_event_cycles = (uint64_t)(per_ms / 1000.0);
    uint64_t step = (uint64_t)(per_ms / 1000.0 * (double)mallet_proc.opts.time_step_us), p2 = 1;
    while (p2 < step && p2 < (1ull << 62))
        p2 <<= 1;
    mallet_proc.step_mask = step ? p2 - 1 : 0;
    atomic_store(&mallet_proc.next_rss, rss_ms ? c1 : UINT64_MAX);
}

/* A fork is a point in time both processes' traces refer to (a child frees blocks its parent
 * made before it). So the forking thread's events before it end a chunk, and its first events
 * after it, in both processes, read the clock: times carried over a fork (mallet_stamp), or
 * spread by a reader between two readings around it, could place it wrongly. */
static void before_fork(void)
{
    if (atomic_load(&mallet_ready) != 1) return;
    mallet_tstate_t *t = &mallet_tls;
    /* Not from a signal handler that interrupted this thread inside the recorder (a fork there
     * is legal): the buffer may be half-appended or locked. Its chunk then spans the fork. */
    if (t->buf && !t->in_hook) mallet_tbuf_flush(t->buf, 0);
    t->unstamped = 0;
    t->last_read = 0; /* and that reading is kept as read, not rounded to a step (stamp.c) */
    mallet_stamp_before_fork();
    /* After every event before the fork (their readings and the ones they carry are earlier),
     * before any after it in either process (the first reads the clock again). */
    fork_cycles = mallet_cycles_after_loads();
    fork_ns = mallet_now_ns();
    fork_realtime_ns = mallet_realtime_ns();
}

static void after_fork_child(void)
{
    if (atomic_load(&mallet_ready) != 1) return;
    mallet_tstate_t *t = &mallet_tls;
    mallet_proc.ppid = mallet_proc.pid;
    mallet_proc.pid = getpid();
    mallet_proc.forked = 1;
    atomic_store(&mallet_proc.next_serial, 1);
    atomic_store(&mallet_proc.attaches, 0); /* one thread again (and not dense) */
    mallet_proc.membarrier_ok = mallet_membarrier_register() == 0; /* a new mm */
    mallet_zslot_after_fork_child();
    mallet_tbuf_after_fork_child(t);
    mallet_output_after_fork_child();
    start_clock(0);
}

void mallet_init(void)
{
    int expect = 0;
    /* Plain load first: in pass-through mode every hooked call comes here. */
    if (atomic_load_explicit(&init_state, memory_order_relaxed) != 0 ||
        !atomic_compare_exchange_strong(&init_state, &expect, 1)) {
        /* Another thread is starting the recorder: its calls pass through meanwhile. */
        return;
    }
    atomic_store(&mallet_ready, 2);
    mallet_tstate_t *t = &mallet_tls;
    t->in_hook++;
    mallet_resolve_real();
    mallet_cxx_resolve();
    mallet_opts_read(&mallet_proc.opts);
    const char *owner = mallet_proc.opts.disabled ? NULL : mallet_malloc_owner();
    if (owner) { /* nothing the program allocates would come here: say so, record nothing */
        const char *line[] = {"mallet: malloc here is ", owner,
                              "'s own, found before the recorder's: this process's allocations "
                              "are not recorded",
                              NULL};
        mallet_say(line);
    }
    if (!mallet_proc.opts.disabled && !owner) {
        mallet_proc.pid = getpid();
        mallet_proc.ppid = getppid();
        atomic_store(&mallet_proc.next_serial, 1);
        (void)mallet_statm_fd(); /* opened now, as the process starts */
        /* now, while the process (almost always) has one thread: registering later costs an RCU
         * grace period, milliseconds */
        mallet_proc.membarrier_ok = mallet_membarrier_register() == 0;
        start_clock(1);
        mallet_proc.dsos = mallet_output_dso_counts();
        have_key = pthread_key_create(&thread_key, on_thread_exit) == 0;
        mallet_proc.thread_exits = have_key;
        pthread_atfork(before_fork, NULL, after_fork_child);
        install_signal_handlers();
        atomic_store(&mallet_ready, 1);
        /* A new image creates its file now, so even a SIGKILL before the first flush leaves a
         * readable trace; a forked child waits for its first write (most just exec). */
        (void)mallet_output_fd();
    }
    t->in_hook--;
    atomic_store(&init_state, 2);
}

__attribute__((constructor)) static void mallet_constructor(void)
{
    mallet_init();
}

/* A library whose calls of the allocator go to the C library's directly (loaded with
 * RTLD_DEEPBIND: it looks in its own dependencies first) is out of the recorder's reach, and
 * what it does shows in the analyses as frees of unknown pointers (its blocks freed by others)
 * or leaks (others' blocks it freed): says so once, naming it. Looked for when a library was
 * loaded since the start (now: the loader's counts), at the end and before an unload. */
static void warn_direct_bindings(mallet_dso_counts_t now)
{
    static _Atomic int warned;
    if (atomic_load(&warned) || !now.adds || now.adds == mallet_proc.dsos.adds) return;
    const char *const names[] = {"malloc", "calloc",         "realloc",       "reallocarray",
                                 "free",   "posix_memalign", "aligned_alloc", "memalign",
                                 "valloc", "pvalloc"};
    void *const addrs[] = {(void *)mallet_real.malloc,        (void *)mallet_real.calloc,
                           (void *)mallet_real.realloc,       (void *)mallet_real.reallocarray,
                           (void *)mallet_real.free,          (void *)mallet_real.posix_memalign,
                           (void *)mallet_real.aligned_alloc, (void *)mallet_real.memalign,
                           (void *)mallet_real.valloc,        (void *)mallet_real.pvalloc};
    const char *lib = mallet_find_direct_binding(names, addrs, sizeof names / sizeof names[0],
                                                 (const void *)&warned);
    if (!lib || atomic_exchange(&warned, 1)) return;
    const char *line[] = {"mallet: ", lib,
                          " calls the C library's allocator directly, not through the recorder "
                          "(loaded with RTLD_DEEPBIND?): its allocations are not recorded, and "
                          "its blocks freed elsewhere read as frees of unknown pointers",
                          NULL};
    mallet_say(line);
}

void mallet_finish(int reason)
{
    if (atomic_load(&mallet_ready) != 1 || getpid() != mallet_proc.pid) return;
    mallet_tstate_t *t = &mallet_tls;
    t->in_hook++;
    if (reason != MALLET_END_EXEC) atomic_store(&mallet_proc.write_through, 1);
    mallet_tbuf_flush_all(t, 0);
    if (reason != MALLET_END_EXEC) mallet_tbuf_release(t, 0);
    /* Libraries loaded since the start; a program that loaded none (most) is spared a second
     * read of /proc/self/maps (~10% of a short process's recording cost) and the search. */
    mallet_dso_counts_t now = mallet_output_dso_counts(), then = mallet_proc.dsos;
    warn_direct_bindings(now);
    if (mallet_output_is_open()) {
        mallet_output_maps(NULL, !now.adds || now.adds != then.adds || now.subs != then.subs);
        uint8_t why = (uint8_t)reason;
        mallet_chunk_header_t h = {.type = MALLET_CHUNK_END};
        int r = mallet_zslot_write(NULL, &h, &why, 1);
        if (r && r != -EBADF) mallet_output_failed(-r);
    }
    t->in_hook--;
}

/* Runs at exit() and on return from main, after the program's own destructors (a preloaded
 * library is finalised late). Allocator calls made after this are written one by one. */
__attribute__((destructor)) static void mallet_destructor(void)
{
    mallet_finish(MALLET_END_EXIT);
}

/* ---- hooks on the ends of an image --------------------------------------------------------- */

EXPORT void _exit(int status)
{
    mallet_finish(MALLET_END__EXIT);
    if (mallet_real.exit_) mallet_real.exit_(status);
    syscall(SYS_exit_group, status);
    __builtin_unreachable();
}

EXPORT void _Exit(int status)
{
    mallet_finish(MALLET_END__EXIT);
    if (mallet_real.Exit_) mallet_real.Exit_(status);
    syscall(SYS_exit_group, status);
    __builtin_unreachable();
}

typedef int (*execve_fn)(const char *, char *const[], char *const[]);
typedef int (*execvp_fn)(const char *, char *const[]);
typedef int (*execvpe_fn)(const char *, char *const[], char *const[]);
typedef int (*fexecve_fn)(int, char *const[], char *const[]);

/* The image is about to be replaced: write what it recorded. If the exec fails the program goes
 * on and so does its trace. */
static void before_exec(void)
{
    mallet_finish(MALLET_END_EXEC);
}

EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
    static void *_Atomic real;
    execve_fn fn = (execve_fn)next_function(&real, "execve");
    before_exec();
    return fn(path, argv, envp);
}

EXPORT int execv(const char *path, char *const argv[])
{
    static void *_Atomic real;
    execvp_fn fn = (execvp_fn)next_function(&real, "execv");
    before_exec();
    return fn(path, argv);
}

EXPORT int execvp(const char *file, char *const argv[])
{
    static void *_Atomic real;
    execvp_fn fn = (execvp_fn)next_function(&real, "execvp");
    before_exec();
    return fn(file, argv);
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
    static void *_Atomic real;
    execvpe_fn fn = (execvpe_fn)next_function(&real, "execvpe");
    before_exec();
    return fn(file, argv, envp);
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
    static void *_Atomic real;
    fexecve_fn fn = (fexecve_fn)next_function(&real, "fexecve");
    before_exec();
    return fn(fd, argv, envp);
}

/* A library about to be unloaded: its callsites keep their names (mallet_output_maps_before_
 * unload). The real dlclose is found without dlsym (next_function). */
EXPORT int dlclose(void *handle)
{
    typedef int dlclose_fn(void *);
    static void *_Atomic real;
    dlclose_fn *fn = (dlclose_fn *)next_function(&real, "dlclose");
    mallet_tstate_t *t = &mallet_tls;
    if (atomic_load(&mallet_ready) == 1 && !t->in_hook && getpid() == mallet_proc.pid) {
        t->in_hook++;
        mallet_dso_counts_t now = mallet_output_dso_counts();
        mallet_output_maps_before_unload(now);
        warn_direct_bindings(now);
        t->in_hook--;
    }
    return fn(handle);
}

/* execl, execlp, execle: collect the variadic list on the stack, then go through the v forms
 * above (glibc's own execl* call execve internally, where no hook would see them). */
#define MAX_EXECL_ARGS 4096
#define COLLECT_ARGS(arg0, extra_env)                                                              \
    char *argv_[MAX_EXECL_ARGS + 1];                                                               \
    size_t n_ = 0;                                                                                 \
    va_list ap_;                                                                                   \
    va_start(ap_, arg0);                                                                           \
    argv_[n_++] = (char *)(arg0);                                                                  \
    while (argv_[n_ - 1] && n_ <= MAX_EXECL_ARGS)                                                  \
        argv_[n_++] = va_arg(ap_, char *);                                                         \
    if (argv_[n_ - 1]) {                                                                           \
        va_end(ap_);                                                                               \
        errno = E2BIG;                                                                             \
        return -1;                                                                                 \
    }                                                                                              \
    extra_env;                                                                                     \
    va_end(ap_)

EXPORT int execl(const char *path, const char *arg, ...)
{
    COLLECT_ARGS(arg, (void)0);
    return execv(path, argv_);
}

EXPORT int execlp(const char *file, const char *arg, ...)
{
    COLLECT_ARGS(arg, (void)0);
    return execvp(file, argv_);
}

EXPORT int execle(const char *path, const char *arg, ...)
{
    char **envp_;
    COLLECT_ARGS(arg, envp_ = va_arg(ap_, char **));
    return execve(path, argv_, envp_);
}
