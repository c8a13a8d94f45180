/* Linux implementation of platform.h. Nothing here may call malloc or stdio: the recorder calls
 * these from inside malloc hooks and signal handlers. */
#define _GNU_SOURCE
#include "platform.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <linux/membarrier.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

uint64_t mallet_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t mallet_realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int mallet_membarrier_register(void)
{
    return syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) ? -errno : 0;
}

int mallet_membarrier(void)
{
    return syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) ? -errno : 0;
}

pid_t mallet_gettid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

int mallet_on_signal_stack(void)
{
    stack_t ss;
    return sigaltstack(NULL, &ss) == 0 && (ss.ss_flags & SS_ONSTACK);
}

int mallet_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (n == 0) return -EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int mallet_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
    for (char *p = buf; len > 0;) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (n == 0) return -EIO;
        p += n, off += (uint64_t)n, len -= (size_t)n;
    }
    return 0;
}

int mallet_write2(int fd, const void *a, size_t alen, const void *b, size_t blen)
{
    struct iovec iov[2] = {{(void *)a, alen}, {(void *)b, blen}};
    size_t total = alen + blen;
    /* One writev in the common case: with O_APPEND the two pieces land together even when
     * several threads flush at once, so chunks never interleave. */
    ssize_t n;
    do {
        n = writev(fd, iov, blen ? 2 : 1);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    if ((size_t)n == total) return 0;
    /* Short write (disk full, or a signal mid-way): finish piece by piece. */
    if ((size_t)n < alen) {
        int r = mallet_write_all(fd, (const char *)a + n, alen - (size_t)n);
        return r ? r : mallet_write_all(fd, b, blen);
    }
    return mallet_write_all(fd, (const char *)b + (n - (ssize_t)alen), total - (size_t)n);
}

ssize_t mallet_read_small_file(const char *path, char *buf, size_t cap)
{
    if (cap == 0) return -EINVAL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    size_t len = 0;
    while (len + 1 < cap) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            close(fd);
            return -e;
        }
        if (n == 0) break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = 0;
    return (ssize_t)len;
}

uint64_t mallet_rss_bytes(int statm_fd)
{
    char buf[128];
    if (statm_fd < 0) return 0;
    ssize_t n = pread(statm_fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return 0;
    buf[n] = 0;
    /* statm: size resident shared text lib data dt, in pages */
    const char *p = buf;
    while (*p && *p != ' ')
        p++;
    while (*p == ' ')
        p++;
    uint64_t pages = 0;
    while (*p >= '0' && *p <= '9')
        pages = pages * 10 + (uint64_t)(*p++ - '0');
    return pages * mallet_page_size();
}

int mallet_high_fd(int fd)
{
    if (fd < 0) return fd;
    int high = fcntl(fd, F_DUPFD_CLOEXEC, 700);
    struct rlimit rl;
    /* a descriptor limit of 700 or less (ulimit -n 64): the top of its range */
    if (high < 0 && errno == EINVAL && !getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur > 16 &&
        rl.rlim_cur <= 700)
        high = fcntl(fd, F_DUPFD_CLOEXEC, (int)rl.rlim_cur - 8);
    if (high < 0) return fd;
    close(fd);
    return high;
}

int mallet_rss_peak_reset(void)
{
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    int rc = write(fd, "5", 1) == 1 ? 0 : -errno; /* 5: reset the peak RSS (Linux 4.0) */
    close(fd);
    return rc;
}

int mallet_rss_peak(uint64_t *peak)
{
    char buf[4096];
    ssize_t n = mallet_read_small_file("/proc/self/status", buf, sizeof buf);
    if (n < 0) return (int)n;
    const char *p = strstr(buf, "\nVmHWM:");
    if (!p) return -ENOENT;
    for (p += 7; *p == ' ' || *p == '\t'; p++) {
    }
    uint64_t kb = 0;
    while (*p >= '0' && *p <= '9')
        kb = kb * 10 + (uint64_t)(*p++ - '0');
    *peak = kb * 1024u;
    return 0;
}

void *mallet_map(size_t len)
{
    /* an empty table is a valid table: one byte, so that NULL only ever means failure */
    void *p = mmap(NULL, len ? len : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void mallet_unmap(void *p, size_t len)
{
    if (p) munmap(p, len ? len : 1);
}

void *mallet_map_stacks(size_t n, size_t size)
{
    size_t page = mallet_page_size(), one = size + page;
    if (!n || one > SIZE_MAX / n) return NULL;
    char *p = mmap(NULL, n * one, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return NULL;
    for (size_t i = 0; i < n; i++)
        if (mprotect(p + i * one, page, PROT_NONE)) {
            munmap(p, n * one);
            return NULL;
        }
    return p;
}

int mallet_find_library(const char *soname, char *out, size_t cap)
{
    static const char *const system_dirs[] = {
#if defined(__x86_64__)
        "/lib/x86_64-linux-gnu",
        "/usr/lib/x86_64-linux-gnu",
#elif defined(__aarch64__)
        "/lib/aarch64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
#endif
        "/lib64",
        "/usr/lib64",
        "/lib",
        "/usr/lib",
        "/usr/local/lib",
        NULL
    };
    const char *llp = getenv("LD_LIBRARY_PATH");
    char dir[4096];
    /* LD_LIBRARY_PATH first, as the dynamic loader does, then the system directories. */
    while (llp && *llp) {
        size_t n = strcspn(llp, ":");
        if (n && n < sizeof dir) {
            memcpy(dir, llp, n);
            dir[n] = 0;
            if ((size_t)snprintf(out, cap, "%s/%s", dir, soname) < cap && access(out, R_OK) == 0)
                return 0;
        }
        llp += n + (llp[n] == ':');
    }
    for (int i = 0; system_dirs[i]; i++)
        if ((size_t)snprintf(out, cap, "%s/%s", system_dirs[i], soname) < cap &&
            access(out, R_OK) == 0)
            return 0;
    return -ENOENT;
}

size_t mallet_page_size(void)
{
    static size_t ps;
    if (!ps) ps = (size_t)sysconf(_SC_PAGESIZE);
    return ps;
}

/* ---- symbol lookup without dlsym ----------------------------------------------------------- */

typedef struct next_lookup {
    const char *name;
    uint32_t hash;
    const void *self;
    int after;     /* look after self's object (else before it) */
    int past_self; /* self's object was seen */
    void *found;
} next_lookup_t;

static uint32_t gnu_hash(const char *s)
{
    uint32_t h = 5381;
    for (; *s; s++)
        h = h * 33 + (uint8_t)*s;
    return h;
}

/* A .dynamic address: the loader relocates the entries of a loaded object in place (x86-64), not
 * those of the vDSO, which stay offsets. */
static uintptr_t dyn_addr(uintptr_t base, ElfW(Addr) v)
{
    return v < base ? base + v : v;
}

/* What the lookups below read of a loaded object's dynamic section. */
typedef struct dyn_tables {
    uintptr_t base;
    int holds_self; /* the object holds the address self */
    const ElfW(Sym) * symtab;
    const char *strtab;
    size_t strsz;
    const uint32_t *gnu_hash;
    const ElfW(Half) * versym;
    const ElfW(Rela) * jmprel, *rela; /* relocations: the PLT's, the others */
    size_t jmprel_count, rela_count;
} dyn_tables_t;

static dyn_tables_t read_dyn(const struct dl_phdr_info *info, const void *self)
{
    dyn_tables_t t = {.base = info->dlpi_addr};
    const ElfW(Dyn) *dyn = NULL;
    for (unsigned i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (uintptr_t)self - t.base - ph->p_vaddr < ph->p_memsz)
            t.holds_self = 1;
        if (ph->p_type == PT_DYNAMIC) dyn = (const ElfW(Dyn) *)(t.base + ph->p_vaddr);
    }
    size_t jmprel_size = 0, rela_size = 0;
    for (const ElfW(Dyn) *d = dyn; d && d->d_tag != DT_NULL; d++) {
        uintptr_t a = dyn_addr(t.base, d->d_un.d_ptr);
        switch (d->d_tag) {
        case DT_SYMTAB:
            t.symtab = (const ElfW(Sym) *)a;
            break;
        case DT_STRTAB:
            t.strtab = (const char *)a;
            break;
        case DT_STRSZ:
            t.strsz = d->d_un.d_val;
            break;
        case DT_GNU_HASH:
            t.gnu_hash = (const uint32_t *)a;
            break;
        case DT_VERSYM:
            t.versym = (const ElfW(Half) *)a;
            break;
        case DT_JMPREL:
            t.jmprel = (const ElfW(Rela) *)a;
            break;
        case DT_PLTRELSZ:
            jmprel_size = d->d_un.d_val;
            break;
        case DT_RELA:
            t.rela = (const ElfW(Rela) *)a;
            break;
        case DT_RELASZ:
            rela_size = d->d_un.d_val;
            break;
        default:
            break;
        }
    }
    t.jmprel_count = t.jmprel ? jmprel_size / sizeof *t.jmprel : 0;
    t.rela_count = t.rela ? rela_size / sizeof *t.rela : 0;
    return t;
}

/* The GNU hash table's lookup (the bloom filter, the bucket, the chain of equal hashes). */
static int find_in_object(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    next_lookup_t *lk = arg;
    dyn_tables_t t = read_dyn(info, lk->self);
    if (t.holds_self) {
        lk->past_self = 1;
        return !lk->after; /* before it: the search ends there */
    }
    const uint32_t *gh = t.gnu_hash;
    if (lk->past_self != lk->after || !t.symtab || !t.strtab || !gh || gh[0] == 0 || gh[2] == 0)
        return 0;
    uint32_t nbuckets = gh[0], symoffset = gh[1], bloom_size = gh[2], shift = gh[3];
    const ElfW(Addr) *bloom = (const ElfW(Addr) *)(gh + 4);
    const uint32_t *buckets = (const uint32_t *)(bloom + bloom_size), *chain = buckets + nbuckets;
    const unsigned bits = sizeof(ElfW(Addr)) * 8;
    uint32_t h = lk->hash;
    ElfW(Addr) word = bloom[(h / bits) % bloom_size];
    ElfW(Addr) mask = (ElfW(Addr))1 << (h % bits) | (ElfW(Addr))1 << ((h >> shift) % bits);
    if ((word & mask) != mask) return 0;
    for (uint32_t i = buckets[h % nbuckets]; i >= symoffset; i++) {
        uint32_t h2 = chain[i - symoffset];
        const ElfW(Sym) *sym = &t.symtab[i];
        unsigned type = ELF64_ST_TYPE(sym->st_info), bind = ELF64_ST_BIND(sym->st_info);
        if ((h | 1) == (h2 | 1) && sym->st_name < t.strsz &&
            !strcmp(t.strtab + sym->st_name, lk->name) && sym->st_shndx != SHN_UNDEF &&
            type == STT_FUNC && (bind == STB_GLOBAL || bind == STB_WEAK) &&
            !(t.versym && (t.versym[i] & 0x8000))) {
            lk->found = (void *)(t.base + sym->st_value);
            return 1;
        }
        if (h2 & 1) break; /* the chain's last */
    }
    return 0;
}

void *mallet_find_function(const char *name, const void *self, int after)
{
    next_lookup_t lk = {.name = name, .hash = gnu_hash(name), .self = self, .after = after};
    dl_iterate_phdr(find_in_object, &lk);
    return lk.found;
}

#if defined(__x86_64__)
#define GOT_CALL R_X86_64_JUMP_SLOT
#define GOT_ADDR R_X86_64_GLOB_DAT
#elif defined(__aarch64__)
#define GOT_CALL R_AARCH64_JUMP_SLOT
#define GOT_ADDR R_AARCH64_GLOB_DAT
#endif

typedef struct binding_search {
    const char *const *names;
    void *const *addrs;
    size_t n;
    const void *self;
    const char *found;
} binding_search_t;

/* Does one of rel[0..count) bind a searched name to its searched address? */
static int binds_directly(const binding_search_t *bs, const dyn_tables_t *t, const ElfW(Rela) * rel,
                          size_t count)
{
#ifdef GOT_CALL
    for (size_t i = 0; i < count; i++) {
        unsigned type = (unsigned)ELF64_R_TYPE(rel[i].r_info);
        if (type != GOT_CALL && type != GOT_ADDR) continue;
        const ElfW(Sym) *sym = &t->symtab[ELF64_R_SYM(rel[i].r_info)];
        if (sym->st_name >= t->strsz) continue;
        const char *name = t->strtab + sym->st_name;
        for (size_t k = 0; k < bs->n; k++)
            if (bs->addrs[k] && !strcmp(name, bs->names[k]) &&
                *(void *const *)(t->base + rel[i].r_offset) == bs->addrs[k])
                return 1;
    }
#else
    (void)bs, (void)t, (void)rel, (void)count;
#endif
    return 0;
}

static int find_binding(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    binding_search_t *bs = arg;
    dyn_tables_t t = read_dyn(info, bs->self);
    /* not self's object, nor the vDSO or the program (no name) */
    if (t.holds_self || !t.symtab || !t.strtab || !info->dlpi_name || !info->dlpi_name[0]) return 0;
    if (binds_directly(bs, &t, t.jmprel, t.jmprel_count) ||
        binds_directly(bs, &t, t.rela, t.rela_count)) {
        bs->found = info->dlpi_name;
        return 1;
    }
    return 0;
}

const char *mallet_find_direct_binding(const char *const *names, void *const *addrs, size_t n,
                                       const void *self)
{
    binding_search_t bs = {.names = names, .addrs = addrs, .n = n, .self = self};
    dl_iterate_phdr(find_binding, &bs);
    return bs.found;
}
