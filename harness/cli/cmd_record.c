/* `mallet record`: runs a command with the recorder preloaded. The command's stdin, stdout,
 * stderr, exit status and death by signal pass through unchanged; the recorder's MALLET_*
 * variables are the whole interface, so the same library works with a plain LD_PRELOAD. */
#define _GNU_SOURCE
#include "cli.h"

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define RECORD_LIB "libmallet_record.so"

void mallet_usage_record(FILE *out)
{
    fprintf(out,
            "usage: mallet record [-o DIR_OR_FILE] [-q] [--zstd-level N] [--] CMD [ARGS...]\n\n"
            "Runs CMD with the mallet recorder preloaded; every process of CMD's tree (fork,\n"
            "exec, pipelines) writes its own trace file. Exits with CMD's exit status.\n\n"
            "  -o FILE        trace of CMD's first process; others write FILE.PID\n"
            "                 (default: ./NAME.mtrace, NAME being CMD's base name)\n"
            "  -o DIR/        one file per process, DIR/COMM.PID.mtrace (DIR is created)\n"
            "                 A recording replaces the one before it: FILE and FILE.*, or\n"
            "                 DIR's *.mtrace files, are removed first.\n"
            "  -o /dev/null   (a character device) every process writes into it: recording\n"
            "                 measured without its files\n"
            "  -q             do not print where the traces went\n"
            "  --zstd-level N compress event chunks with zstd at level N, -7..19 (default -1,\n"
            "                 zstd's fast level: real programs' traces 2-20x smaller; 0: raw)\n\n"
            "Without the CLI: LD_PRELOAD=%s MALLET_OUTPUT=DIR_OR_FILE CMD\n"
            "(see docs/RECORDER.md for every MALLET_* variable).\n",
            RECORD_LIB);
}

/* The recorder library: $MALLET_RECORD_LIB, else in mallet's library directory. */
static int find_library(char *out, size_t cap)
{
    const char *env = getenv("MALLET_RECORD_LIB");
    if (env && *env) return snprintf(out, cap, "%s", env) < (int)cap && access(out, R_OK) == 0;
    char dir[PATH_MAX];
    return mallet_cli_libdir(dir, sizeof dir) == 0 &&
           snprintf(out, cap, "%s/" RECORD_LIB, dir) < (int)cap;
}

static int is_dir_output(const char *o)
{
    struct stat sb;
    size_t n = strlen(o);
    return (n && o[n - 1] == '/') || (stat(o, &sb) == 0 && S_ISDIR(sb.st_mode));
}

/* FILE.PID or FILE.PID.N: the names the recorder gives a run's other processes. */
static int is_sibling_name(const char *name, const char *base)
{
    size_t bl = strlen(base);
    if (strncmp(name, base, bl) || name[bl] != '.') return 0;
    const char *p = name + bl + 1;
    int dots = 0, digits = 0;
    for (; *p; p++) {
        if (*p == '.' && digits && dots++ == 0)
            digits = 0;
        else if (*p >= '0' && *p <= '9')
            digits++;
        else
            return 0;
    }
    return digits > 0;
}

/* Removes a previous recording to the same place, which a recording replaces (`mallet stats
 * DIR` would merge the two runs' processes): FILE and FILE.PID[.N], or DIR's *.mtrace files. */
static void remove_previous(const char *output, int dir_mode)
{
    char dirbuf[PATH_MAX], basebuf[PATH_MAX];
    snprintf(dirbuf, sizeof dirbuf, "%s", output);
    snprintf(basebuf, sizeof basebuf, "%s", output);
    const char *dir = dir_mode ? output : dirname(dirbuf), *base = basename(basebuf);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[PATH_MAX];
        if (dir_mode ? !mallet_cli_is_trace_name(e->d_name)
                     : strcmp(e->d_name, base) && !is_sibling_name(e->d_name, base))
            continue;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) continue;
        struct stat sb;
        if (lstat(path, &sb) == 0 && S_ISREG(sb.st_mode)) unlink(path);
    }
    closedir(d);
}

/* The file execvp would run for cmd, into out; 0 if none is found. */
static int find_command(const char *cmd, char *out, size_t cap)
{
    if (strchr(cmd, '/')) return snprintf(out, cap, "%s", cmd) < (int)cap;
    const char *path = getenv("PATH");
    for (const char *p = path && *path ? path : "/bin:/usr/bin"; *p;) {
        const char *end = strchr(p, ':');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (snprintf(out, cap, "%.*s%s%s", (int)n, p, n ? "/" : "", cmd) < (int)cap &&
            access(out, X_OK) == 0)
            return 1;
        p += n + (end != NULL);
    }
    return 0;
}

/* What the loader needs to know of an ELF file: its word size and machine (e_ident[EI_CLASS],
 * e_machine, at the same offsets in both classes), and for a 64-bit one whether it names a
 * program interpreter. 0 if file is not a readable ELF file. */
typedef struct elf_kind {
    int class, machine, is_static;
} elf_kind_t;

static int read_elf_kind(const char *file, elf_kind_t *k)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    Elf64_Ehdr eh;
    int ok =
        pread(fd, &eh, sizeof eh, 0) == (ssize_t)sizeof eh && !memcmp(eh.e_ident, ELFMAG, SELFMAG);
    if (ok) {
        k->class = eh.e_ident[EI_CLASS];
        k->machine = eh.e_machine;
        k->is_static = 0;
    }
    /* Without PT_INTERP no dynamic loader runs, to preload anything or not (64-bit only: a
     * 32-bit program is unreachable anyway). */
    if (ok && k->class == ELFCLASS64 && eh.e_phentsize == sizeof(Elf64_Phdr) && eh.e_phnum > 0 &&
        eh.e_phnum < 1024) {
        k->is_static = 1;
        for (unsigned i = 0; i < eh.e_phnum && k->is_static; i++) {
            Elf64_Phdr ph;
            if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + i * sizeof ph)) !=
                (ssize_t)sizeof ph)
                k->is_static = 0; /* unreadable: say nothing */
            else if (ph.p_type == PT_INTERP)
                k->is_static = 0;
        }
    }
    close(fd);
    return ok;
}

/* "32-bit i386", "64-bit x86-64", ... into buf. */
static const char *elf_kind_name(const elf_kind_t *k, char *buf, size_t cap)
{
    const char *m = k->machine == EM_386       ? "i386"
                    : k->machine == EM_X86_64  ? "x86-64"
                    : k->machine == EM_ARM     ? "arm"
                    : k->machine == EM_AARCH64 ? "aarch64"
                                               : NULL;
    char num[24];
    if (!m) snprintf(num, sizeof num, "machine %d", k->machine);
    snprintf(buf, cap, "%s %s", k->class == ELFCLASS32 ? "32-bit" : "64-bit", m ? m : num);
    return buf;
}

/* Programs that LD_PRELOAD cannot reach, of which nothing would be recorded, silently: one built
 * for another word size or machine than the recorder library lib (a 32-bit program: its loader
 * skips a 64-bit library with a line of its own that does not say what it means), a statically
 * linked one (no dynamic loader), and a set-user-ID or set-group-ID one that changes who runs it
 * (the loader ignores LD_PRELOAD in secure-execution mode). */
static void warn_if_unreachable(const char *cmd, const char *lib)
{
    char file[PATH_MAX];
    struct stat sb;
    struct statvfs vfs;
    elf_kind_t prog = {0}, rec = {0};
    if (!find_command(cmd, file, sizeof file) || stat(file, &sb)) return;
    if (read_elf_kind(file, &prog) && read_elf_kind(lib, &rec) &&
        (prog.class != rec.class || prog.machine != rec.machine)) {
        char a[32], b[32];
        mallet_err("record: %s is a %s program, the recorder library %s is %s: it cannot be "
                   "loaded there, so nothing of it is recorded (only of programs it runs that "
                   "match)",
                   file, elf_kind_name(&prog, a, sizeof a), lib, elf_kind_name(&rec, b, sizeof b));
        return;
    }
    if (prog.is_static) {
        mallet_err("record: %s is statically linked: LD_PRELOAD cannot reach it, so its own "
                   "allocations are not recorded (only those of programs it runs)",
                   file);
        return;
    }
    if (statvfs(file, &vfs) == 0 && (vfs.f_flag & ST_NOSUID)) return; /* the bits do nothing */
    if (((sb.st_mode & S_ISUID) && sb.st_uid != geteuid()) ||
        ((sb.st_mode & S_ISGID) && sb.st_gid != getegid()))
        mallet_err("record: %s is set-user-ID or set-group-ID: the loader ignores LD_PRELOAD for "
                   "it (and drops it for its children), so nothing of it is recorded",
                   file);
}

int mallet_cmd_record(int argc, char **argv)
{
    const char *output = NULL;
    int quiet = 0, level = INT_MIN; /* INT_MIN: the recorder's default */
    static const struct option opts[] = {{"output", required_argument, 0, 'o'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"zstd-level", required_argument, 0, 'z'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    opterr = 0;
    /* '+': stop at the first non-option, which is CMD; its own options are not ours. */
    while ((c = getopt_long(argc, argv, "+o:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            output = optarg;
            break;
        case 'q':
            quiet = 1;
            break;
        case 'z': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v < -7 || v > 19)
                return mallet_usage_error("record", "--zstd-level takes -7..19, not '%s'", optarg);
            level = (int)v;
            break;
        }
        case 'h':
            mallet_usage_record(stdout);
            return MALLET_EXIT_OK;
        default:
            return mallet_usage_error("record", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc) return mallet_usage_error("record", "missing the command to run");
    char **cmd = argv + optind;

    char lib[PATH_MAX];
    if (!find_library(lib, sizeof lib)) {
        mallet_err("record: cannot find the recorder library %s (set MALLET_RECORD_LIB)",
                   RECORD_LIB);
        return MALLET_EXIT_FAIL;
    }
    char defout[PATH_MAX];
    if (!output) {
        char tmp[PATH_MAX];
        snprintf(tmp, sizeof tmp, "%s", cmd[0]);
        snprintf(defout, sizeof defout, "%s.mtrace", basename(tmp));
        output = defout;
    }
    /* Every process of the tree writes where this one means, whatever directory it changes to
     * (make -C, a script's cd): a relative path is made absolute here, once. */
    char absout[PATH_MAX];
    if (output[0] != '/') {
        char cwd[PATH_MAX];
        errno = 0;
        if (!getcwd(cwd, sizeof cwd) ||
            snprintf(absout, sizeof absout, "%s/%s", cwd, output) >= (int)sizeof absout) {
            mallet_err("record: %s: cannot make the path absolute: %s", output,
                       errno ? strerror(errno) : "too long");
            return MALLET_EXIT_FAIL;
        }
        output = absout;
    }
    int dir_mode = is_dir_output(output);
    if (dir_mode && mkdir(output, 0700) && errno != EEXIST) {
        mallet_err("record: %s: %s", output, strerror(errno));
        return MALLET_EXIT_FAIL;
    }
    remove_previous(output, dir_mode);
    char preload[2 * PATH_MAX];
    const char *old = getenv("LD_PRELOAD");
    snprintf(preload, sizeof preload, "%s%s%s", lib, old && *old ? " " : "", old ? old : "");

    /* mallet becomes CMD (exec, no fork): CMD's exit status, its death by a signal and the
     * terminal's signals are its own with nothing in between, and no extra process slows a
     * short command. The recorder in CMD (the process whose parent is our parent) writes
     * FILE itself; its descendants write FILE.PID. */
    char ppidbuf[32], lvl[16];
    snprintf(ppidbuf, sizeof ppidbuf, "%ld", (long)getppid());
    setenv("LD_PRELOAD", preload, 1);
    setenv("MALLET_OUTPUT", output, 1);
    setenv("MALLET_ROOT_PPID", ppidbuf, 1);
    if (level != INT_MIN) {
        snprintf(lvl, sizeof lvl, "%d", level);
        setenv("MALLET_ZSTD_LEVEL", lvl, 1);
    }
    struct stat out_sb;
    int device = !dir_mode && stat(output, &out_sb) == 0 && S_ISCHR(out_sb.st_mode);
    if (!quiet)
        mallet_err("record: tracing %s into %s%s", cmd[0], output,
                   dir_mode ? " (one file per process)"
                   : device ? " (a device: every process writes into it)"
                            : " (other processes: FILE.PID)");
    warn_if_unreachable(cmd[0], lib);
    fflush(NULL);
    execvp(cmd[0], cmd);
    int e = errno;
    mallet_err("record: %s: %s", cmd[0], strerror(e));
    return e == ENOENT ? 127 : 126;
}
