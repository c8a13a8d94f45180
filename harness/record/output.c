/* The trace file of this process: naming, lazy creation (header, META), its memory map (MAPS),
 * the check that the program has not closed our descriptor, and the one-time message when
 * writing fails. */
#define _GNU_SOURCE
#include "record.h"

#include "trace/chunk_write.h"

#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <stddef.h>
#include <signal.h>
#include <sys/syscall.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

enum { OUT_UNOPENED = 0, OUT_OPENING = 1, OUT_OPEN = 2, OUT_FAILED = 3 };

static _Atomic int out_state;
static _Atomic int out_reported;
static _Atomic int maps_written; /* the file has a MAPS chunk (mallet_output_maps) */
static int out_fd = -1;
static dev_t out_dev;
static ino_t out_ino;
static char out_path[4096 + 64];
/* Only the thread that wins OUT_OPENING uses these, so they can be static: no malloc, and the
 * file may be made in our handler of a fatal signal, on the program's alternate signal stack,
 * which may be as small as 8 KiB (Rust's, for one): an array of these on the stack ran off
 * it, and the process died of SIGSEGV instead of the signal it was sent. */
static char cmdline_buf[16384];
static char exe_buf[4096];
static uint8_t meta_buf[sizeof cmdline_buf + sizeof exe_buf + 256];

static size_t put_str(char *dst, size_t pos, size_t cap, const char *s)
{
    while (*s && pos + 1 < cap)
        dst[pos++] = *s++;
    dst[pos < cap ? pos : cap - 1] = 0;
    return pos;
}

static size_t put_num(char *dst, size_t pos, size_t cap, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n > 0 && pos + 1 < cap)
        dst[pos++] = tmp[--n];
    dst[pos < cap ? pos : cap - 1] = 0;
    return pos;
}

/* One line on stderr, from NULL-terminated pieces: one writev, no buffer (a signal handler's
 * stack may be small, see cmdline_buf). */
void mallet_say(const char *const *pieces)
{
    struct iovec iov[16];
    int n = 0;
    for (; *pieces && n < 15; pieces++)
        iov[n++] = (struct iovec){(void *)*pieces, strlen(*pieces)};
    iov[n++] = (struct iovec){"\n", 1};
    (void)!writev(2, iov, n);
}

void mallet_output_failed(int err)
{
    atomic_store(&out_state, OUT_FAILED);
    atomic_store(&mallet_ready, 2); /* stop recording; the program runs on untouched */
    if (atomic_exchange(&out_reported, 1)) return;
    const char *why = strerrordesc_np(err);
    const char *line[] = {
        "mallet: cannot write trace ", out_path[0] ? out_path : "(no file)",         ": ",
        why ? why : "unknown error",   "; recording stopped, the program continues", NULL};
    mallet_say(line);
}

/* Where the file goes and how it is named (name_for). */
typedef struct placement {
    const char *out;
    size_t olen;
    int dir_mode;
    char comm[64];
    char dir[4096]; /* the directory the file goes in */
} placement_t;

static void place(placement_t *pl)
{
    const mallet_opts_t *o = &mallet_proc.opts;
    const char *out = o->output[0] ? o->output : ".";
    size_t olen = strlen(out);
    struct stat sb;
    pl->out = out;
    pl->olen = olen;
    pl->dir_mode = out[olen - 1] == '/' || (stat(out, &sb) == 0 && S_ISDIR(sb.st_mode));
    if (pl->dir_mode && out[olen - 1] == '/') (void)mkdir(out, 0700);
    strcpy(pl->comm, "prog");
    ssize_t cn =
        pl->dir_mode ? mallet_read_small_file("/proc/self/comm", pl->comm, sizeof pl->comm) : 0;
    for (ssize_t i = 0; i < cn; i++)
        if (pl->comm[i] == '\n' || pl->comm[i] == '/' || pl->comm[i] == ' ')
            pl->comm[i] = pl->comm[i] == '\n' ? 0 : '_';
    if (!pl->comm[0]) strcpy(pl->comm, "prog");
    size_t d = 0;
    if (pl->dir_mode) {
        d = put_str(pl->dir, 0, sizeof pl->dir, out);
    } else {
        const char *slash = strrchr(out, '/');
        if (!slash)
            d = put_str(pl->dir, 0, sizeof pl->dir, ".");
        else if (slash == out)
            d = put_str(pl->dir, 0, sizeof pl->dir, "/");
        else
            for (d = 0; out + d < slash && d + 1 < sizeof pl->dir; d++)
                pl->dir[d] = out[d];
        pl->dir[d] = 0;
    }
    if (d + 1 >= sizeof pl->dir) pl->dir[0] = 0; /* too long: no unnamed file (create_file) */
}

/* Candidate name n into out_path: DIR/COMM.PID.mtrace in directory mode; FILE for the root
 * process and FILE.PID for the others in file mode (the root: the child of MALLET_ROOT_PPID).
 * Names are never clobbered (an exec keeps the pid), so a taken name gets a .N suffix. */
static int name_for(const placement_t *pl, int n)
{
    const mallet_opts_t *o = &mallet_proc.opts;
    uint64_t pid = (uint64_t)mallet_proc.pid;
    size_t p = 0, cap = sizeof out_path;
    if (pl->dir_mode) {
        p = put_str(out_path, p, cap, pl->out);
        if (pl->out[pl->olen - 1] != '/') p = put_str(out_path, p, cap, "/");
        p = put_str(out_path, p, cap, pl->comm);
        p = put_str(out_path, p, cap, ".");
        p = put_num(out_path, p, cap, pid);
        if (n) p = put_num(out_path, put_str(out_path, p, cap, "."), cap, (uint64_t)n);
        p = put_str(out_path, p, cap, ".mtrace");
    } else {
        int root = o->root_ppid == 0 || o->root_ppid == (long)mallet_proc.ppid;
        p = put_str(out_path, p, cap, pl->out);
        if (!(root && n == 0)) p = put_num(out_path, put_str(out_path, p, cap, "."), cap, pid);
        if (n > (root ? 1 : 0))
            p = put_num(out_path, put_str(out_path, p, cap, "."), cap, (uint64_t)n);
    }
    return p + 1 >= cap ? -ENAMETOOLONG : 0;
}

/* Gives the unnamed file fd (O_TMPFILE) the first free name; -errno if none. */
static int link_file(const placement_t *pl, int fd)
{
    char self[64];
    put_num(self, put_str(self, 0, sizeof self, "/proc/self/fd/"), sizeof self, (uint64_t)fd);
    for (int n = 0; n < 1000; n++) {
        int r = name_for(pl, n);
        if (r) return r;
        if (linkat(AT_FDCWD, self, AT_FDCWD, out_path, AT_SYMLINK_FOLLOW) == 0) return 0;
        if (errno != EEXIST) return -errno;
    }
    return -EEXIST;
}

/* Creates a named file (the first free name) the old way, where no unnamed one can be had. */
static int create_file(const placement_t *pl)
{
    for (int n = 0; n < 1000; n++) {
        int r = name_for(pl, n);
        if (r) return r;
        int fd = open(out_path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0) return fd;
        if (errno != EEXIST) return -errno;
    }
    return -EEXIST;
}

static int write_meta(int fd)
{
    ssize_t cl = mallet_read_small_file("/proc/self/cmdline", cmdline_buf, sizeof cmdline_buf);
    ssize_t el = readlink("/proc/self/exe", exe_buf, sizeof exe_buf - 1);
    exe_buf[el > 0 ? el : 0] = 0;
    mallet_meta_t m = {
        .pid = (uint64_t)mallet_proc.pid,
        .ppid = (uint64_t)mallet_proc.ppid,
        .start_realtime_ns = mallet_proc.start_realtime_ns,
        .start_ns = mallet_proc.start_ns,
        .start_cycles = mallet_proc.start_cycles,
        .cmdline = cmdline_buf,
        .cmdline_len = cl > 0 ? (size_t)cl : 0,
        .exe = exe_buf,
        .forked = mallet_proc.forked,
        .level = mallet_proc.opts.level,
        .cycles_per_sec = mallet_proc.cycles_per_sec,
        .thread_exits = mallet_proc.thread_exits,
        .fork_end_cycles = mallet_proc.forked ? mallet_proc.fork_end_cycles : 0,
    };
    size_t n = mallet_meta_encode(meta_buf, sizeof meta_buf, &m);
    mallet_chunk_header_t h = {.type = MALLET_CHUNK_META};
    return mallet_chunk_write(fd, &h, meta_buf, n, NULL, 0, NULL, 0);
}

/* z: a compression context the caller holds, or NULL to borrow one. */
static int write_maps(mallet_zslot_t *z)
{
    /* /proc/self/maps can be large; read it into fresh anonymous memory, growing as needed. */
    size_t cap = 1 << 20;
    for (;;) {
        char *buf = mallet_map(cap);
        if (!buf) return -ENOMEM;
        ssize_t n = mallet_read_small_file("/proc/self/maps", buf, cap);
        /* Grow up to 32 MiB (well under the reader's chunk limit); past that, a map that
         * large is written cut, which only costs the names of the last modules. */
        if (n >= 0 && (size_t)n + 1 >= cap && cap < (32u << 20)) {
            mallet_unmap(buf, cap);
            cap *= 2;
            continue;
        }
        int r = 0;
        if (n > 0) {
            mallet_chunk_header_t h = {.type = MALLET_CHUNK_MAPS};
            mallet_zslot_t *own = z ? NULL : mallet_zslot_get((size_t)n);
            r = mallet_zslot_write(z ? z : own, &h, (const uint8_t *)buf, (size_t)n);
            if (own) mallet_zslot_put(own);
        }
        mallet_unmap(buf, cap);
        return r;
    }
}

/* Writes the file header and META. */
static int write_head(int fd)
{
    uint8_t fh[MALLET_FILE_HEADER_SIZE];
    mallet_file_header_pack(fh);
    int r = mallet_write_all(fd, fh, sizeof fh);
    return r ? r : write_meta(fd);
}

/* The file is made unnamed (O_TMPFILE) and named once its header and META are in it, so that
 * no process killed meanwhile (SIGKILL) leaves an empty or headless file, which would make
 * `mallet stats` of the folder fail as a whole. Where the file system has no unnamed files, or
 * /proc is missing, it is made the old way. */
static int open_output(void)
{
    static placement_t pl; /* static: see cmdline_buf */
    place(&pl);
    struct stat sb;
    int fd = -1, r = -1;
    if (!pl.dir_mode && stat(pl.out, &sb) == 0 && S_ISCHR(sb.st_mode)) {
        /* A device named as the output (-o /dev/null: recording measured without its files):
         * every process writes into it, and no file is made beside it (before, /dev/null.PID
         * in /dev). */
        if (put_str(out_path, 0, sizeof out_path, pl.out) + 1 >= sizeof out_path)
            return -ENAMETOOLONG;
        fd = open(out_path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) return -errno;
        fd = mallet_high_fd(fd);
        r = write_head(fd);
    } else {
        fd = pl.dir[0] ? open(pl.dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600) : -1;
        if (fd >= 0) {
            fd = mallet_high_fd(fd);
            r = write_head(fd);
            if (!r) r = link_file(&pl, fd);
            if (r == -ENOENT || r == -EXDEV || r == -EPERM) { /* no /proc, or linking refused */
                close(fd);
                fd = -1;
            }
        }
        if (fd < 0) {
            fd = create_file(&pl);
            if (fd < 0) return fd;
            fd = mallet_high_fd(fd);
            r = write_head(fd);
        }
    }
    if (!r && fcntl(fd, F_SETFL, O_APPEND)) r = -errno;
    if (!r && fstat(fd, &sb)) r = -errno;
    if (r) {
        close(fd);
        return r;
    }
    out_dev = sb.st_dev;
    out_ino = sb.st_ino;
    out_fd = fd;
    return 0;
}

/* Every signal a process can receive asynchronously: all but the faults (a fault in the
 * recorder's own code must still kill it at once), SIGKILL and SIGSTOP (which cannot be blocked),
 * and the C library's two internal signals (32, 33: cancellation and setuid across threads,
 * which glibc never blocks either). */
static unsigned long long async_signals(void)
{
    unsigned long long all = ~0ull;
    const int keep[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS, SIGKILL, SIGSTOP, 32, 33};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        all &= ~(1ull << (keep[i] - 1));
    return all;
}

/* Raw rt_sigprocmask/rt_sigpending/rt_sigtimedwait: glibc's wrappers are fine too, but these
 * leave no doubt that nothing here can allocate or take a lock. */
mallet_sigmask_t mallet_output_guard_begin(void)
{
    mallet_sigmask_t saved = {{0, 0}, 0, 0};
    if (mallet_tls.guarded++) return saved; /* already blocked (a write while a buffer's locked) */
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &saved.cancel_state);
    unsigned long long set[2] = {async_signals(), 0}, pend[2] = {0, 0};
    syscall(SYS_rt_sigprocmask, SIG_BLOCK, set, saved.bits, 8);
    syscall(SYS_rt_sigpending, pend, 8);
    saved.was_pending = (pend[0] >> (SIGXFSZ - 1)) & 1;
    return saved;
}

void mallet_output_guard_end(mallet_sigmask_t saved)
{
    if (--mallet_tls.guarded) return;
    unsigned long long xfsz[2] = {1ull << (SIGXFSZ - 1), 0}, pend[2] = {0, 0};
    if (!saved.was_pending && !((saved.bits[0] >> (SIGXFSZ - 1)) & 1)) {
        syscall(SYS_rt_sigpending, pend, 8);
        if ((pend[0] >> (SIGXFSZ - 1)) & 1) {
            struct timespec zero = {0, 0};
            syscall(SYS_rt_sigtimedwait, xfsz, NULL, &zero, 8);
        }
    }
    /* a signal that came meanwhile is delivered here, its handler finding no write half-done */
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, saved.bits, NULL, 8);
    pthread_setcancelstate(saved.cancel_state, NULL);
}

/* True if fd is still the file that had dev and ino when the recorder opened it: a program that
 * closes every descriptor (daemons at their start) may take the recorder's numbers for files of
 * its own. */
static int still(int fd, dev_t dev, ino_t ino)
{
    struct stat sb;
    return fd >= 0 && !fstat(fd, &sb) && sb.st_dev == dev && sb.st_ino == ino;
}

/* True if fd is our trace file still. */
static int ours(int fd)
{
    return still(fd, out_dev, out_ino);
}

/* /proc/self/statm, for the RSS samples: high as the trace's, and checked before each sample:
 * opened again if the program closed it or took its number (samples read the program's file,
 * or none came, before). */
static int statm_fd = -1;
static dev_t statm_dev;
static ino_t statm_ino;

int mallet_statm_fd(void)
{
    struct stat sb;
    if (still(statm_fd, statm_dev, statm_ino)) return statm_fd;
    statm_fd = mallet_high_fd(open("/proc/self/statm", O_RDONLY | O_CLOEXEC));
    if (statm_fd >= 0 && !fstat(statm_fd, &sb)) {
        statm_dev = sb.st_dev;
        statm_ino = sb.st_ino;
    }
    return statm_fd;
}

/* The program closed our descriptor (daemons close every descriptor at their start) or reused
 * its number: the file is opened again by its path, if it is still ours (the same device and
 * inode: not one made since under the name), and recording goes on. A descriptor the program
 * reused is its own now, and left alone. Serialised: every thread that writes comes here. -1:
 * not ours any more, or not to be had. */
static int reopen_output(void)
{
    static _Atomic int busy;
    /* Bounded: a fatal signal's flush may interrupt the very thread that holds it. */
    for (int tries = 1 << 20; atomic_exchange_explicit(&busy, 1, memory_order_acquire);)
        if (--tries == 0) return -1;
    int fd = out_fd;
    if (!ours(fd)) { /* not done by another thread meanwhile */
        fd = open(out_path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY);
        if (fd >= 0 && !ours(fd)) {
            close(fd);
            fd = -1;
        }
        out_fd = fd = mallet_high_fd(fd);
    }
    atomic_store_explicit(&busy, 0, memory_order_release);
    return fd;
}

int mallet_output_fd(void)
{
    int s = atomic_load_explicit(&out_state, memory_order_acquire);
    if (s == OUT_UNOPENED) {
        int expect = OUT_UNOPENED;
        if (atomic_compare_exchange_strong(&out_state, &expect, OUT_OPENING)) {
            int saved_errno = errno;
            mallet_sigmask_t guard = mallet_output_guard_begin();
            int r = open_output();
            mallet_output_guard_end(guard);
            atomic_store(&out_state, r ? OUT_FAILED : OUT_OPEN);
            if (r) mallet_output_failed(-r);
            errno = saved_errno;
        }
        s = atomic_load(&out_state);
    }
    while (s == OUT_OPENING)
        s = atomic_load(&out_state);
    if (s != OUT_OPEN) return -EBADF;
    int saved_errno = errno, fd = ours(out_fd) ? out_fd : reopen_output();
    errno = saved_errno;
    if (fd < 0) mallet_output_failed(EBADF);
    return fd < 0 ? -EBADF : fd;
}

int mallet_output_is_open(void)
{
    return atomic_load(&out_state) == OUT_OPEN;
}

static int count_dsos(struct dl_phdr_info *info, size_t size, void *out)
{
    if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs)
        *(mallet_dso_counts_t *)out =
            (mallet_dso_counts_t){(uint64_t)info->dlpi_adds, (uint64_t)info->dlpi_subs};
    return 1; /* the counters are the same in every entry */
}

mallet_dso_counts_t mallet_output_dso_counts(void)
{
    mallet_dso_counts_t n = {0, 0};
    dl_iterate_phdr(count_dsos, &n);
    return n;
}

/* Objects loaded when a MAPS chunk was last written for an unload (0: none yet). */
static _Atomic uint64_t unload_adds;

void mallet_output_maps_before_unload(mallet_dso_counts_t now)
{
    uint64_t adds = now.adds, seen = atomic_load(&unload_adds);
    if (!seen) seen = mallet_proc.dsos.adds; /* those of the start are in the first MAPS */
    if (adds == seen) return;                /* nothing loaded since: the last MAPS has it */
    atomic_store(&unload_adds, adds);        /* two threads at once: one MAPS more, no harm */
    mallet_output_maps(NULL, 1);
}

void mallet_output_maps(mallet_zslot_t *z, int again)
{
    if (atomic_exchange(&maps_written, 1) && !again) return;
    if (mallet_output_fd() >= 0) (void)write_maps(z);
}

void mallet_output_after_fork_child(void)
{
    /* The parent's descriptors, closed only if they are still its files (the program may have
     * the numbers now); /proc/self was resolved when the parent opened statm: the child opens
     * its own at its first sample. */
    if (ours(out_fd)) close(out_fd);
    if (still(statm_fd, statm_dev, statm_ino)) close(statm_fd);
    statm_fd = -1;
    out_fd = -1;
    out_path[0] = 0;
    atomic_store(&maps_written, 0);
    atomic_store(&out_state, OUT_UNOPENED);
}
