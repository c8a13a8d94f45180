/* Counting a replay's memory-management syscalls (see platform.h): a seccomp filter sends exactly
 * those syscalls to a supervisor thread of the same process as user notifications; the
 * supervisor counts the ones made while the window is open and lets every one go on
 * (SECCOMP_USER_NOTIF_FLAG_CONTINUE, Linux 5.5).
 *
 * Why not a ptrace supervisor: a process has one tracer, and the test that checks these counts
 * runs the worker under `strace -f`; a notification listener coexists with any tracer. Why the
 * supervisor is a thread and not the parent: nothing to pass between processes, and a replay
 * that crashes takes its supervisor with it.
 *
 * Each notified syscall costs a round trip to the supervisor (tens of microseconds on a VM), so
 * the counting runs in a pass of its own, never in a timed one. */
#define _GNU_SOURCE
#include "platform.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/futex.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define MALLET_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define MALLET_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

static const char *const sc_names[MALLET_SC_COUNT_] = {"mmap", "munmap", "mremap",
                                                        "brk", "madvise", "mprotect"};
static const long sc_numbers[MALLET_SC_COUNT_] = {SYS_mmap, SYS_munmap, SYS_mremap,
                                                  SYS_brk, SYS_madvise, SYS_mprotect};

static _Atomic int sc_fd = -1; /* the listener, published to the supervisor by the filtered thread */
static _Atomic int sc_open;
static _Atomic uint64_t sc_counts[MALLET_SC_COUNT_];

const char *mallet_sc_name(unsigned kind)
{
    return kind < MALLET_SC_COUNT_ ? sc_names[kind] : "?";
}

static void *supervise(void *arg)
{
    (void)arg;
    int fd;
    while ((fd = atomic_load(&sc_fd)) < 0)
        syscall(SYS_futex, &sc_fd, FUTEX_WAIT_PRIVATE, fd, NULL, NULL, 0);
    for (;;) {
        struct seccomp_notif req;
        memset(&req, 0, sizeof req); /* the kernel insists on a zeroed request */
        if (ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, &req)) {
            if (errno == EINTR || errno == ENOENT) continue; /* the caller was interrupted */
            return NULL;
        }
        if (atomic_load_explicit(&sc_open, memory_order_acquire))
            for (unsigned k = 0; k < MALLET_SC_COUNT_; k++)
                if (req.data.nr == sc_numbers[k]) atomic_fetch_add(&sc_counts[k], 1);
        struct seccomp_notif_resp resp;
        memset(&resp, 0, sizeof resp);
        resp.id = req.id;
        resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, &resp); /* ENOENT: the caller is gone; nothing to do */
    }
}

int mallet_syscount_start(void)
{
#ifndef MALLET_AUDIT_ARCH
    return -ENOSYS;
#else
    enum { N = MALLET_SC_COUNT_ };
    /* arch check, then one comparison per counted syscall; anything else is allowed untouched */
    struct sock_filter f[4 + N + 1];
    f[0] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    f[1] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MALLET_AUDIT_ARCH, 0, N + 1);
    f[2] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    for (unsigned i = 0; i < N; i++)
        f[3 + i] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
                                                (uint32_t)sc_numbers[i], (uint8_t)(N - i), 0);
    f[3 + N] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    f[4 + N] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF);
    struct sock_fprog prog = {(unsigned short)(sizeof f / sizeof f[0]), f};

    /* the supervisor first: once the filter is on, creating a thread (mmap) would wait for it */
    pthread_t t;
    pthread_attr_t attr;
    if (pthread_attr_init(&attr)) return -ENOMEM;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int e = pthread_create(&t, &attr, supervise, NULL);
    pthread_attr_destroy(&attr);
    if (e) return -e;
    /* without CAP_SYS_ADMIN a filter needs no_new_privs; the worker never execs afterwards */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) return -errno;
    long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    if (fd < 0) return -errno; /* the supervisor waits forever, harmlessly */
    atomic_store(&sc_fd, (int)fd);
    syscall(SYS_futex, &sc_fd, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    return 0;
#endif
}

void mallet_syscount_window(int open)
{
    /* a syscall the supervisor has already received is counted by the state it sees then; the
     * window opens before the replay threads start and closes after they have all finished */
    atomic_store_explicit(&sc_open, open, memory_order_release);
}

void mallet_syscount_read(uint64_t counts[MALLET_SC_COUNT_])
{
    for (unsigned k = 0; k < MALLET_SC_COUNT_; k++) counts[k] = atomic_load(&sc_counts[k]);
}
