/* Fuzz target for callsite resolution (harness/analyze/symbols.c): the /proc/PID/maps text a
 * trace carries and the ELF files it names are both untrusted input to `mallet check` and
 * `mallet stats`. An input is MAPS TEXT, a NUL, then ELF bytes: the ELF bytes become a file (a
 * memfd) and every '@' in the maps text becomes that file's path, so mutated maps lines keep
 * naming a file whose bytes are mutated too. Each input is resolved at fixed addresses around
 * the seed's mappings and at addresses taken from the input, in an address space with the text,
 * one without any, and one past the end. Besides crashes and sanitizer reports it checks what
 * symbols.h promises: an address outside every mapping resolves to nothing, one inside names its
 * module and path, and the formatted name always fits the buffer, NUL-terminated, as a prefix of
 * the whole name.
 *
 * Builds as fuzz_reader.c does (README.md): libFuzzer, or -DMALLET_FUZZ_STANDALONE for a main()
 * that mutates a small ELF64 made here (a PT_LOAD segment and a symbol table with an alias and an
 * unsized C++ function) and runs as a short ctest. */
#define _GNU_SOURCE
#include "analyze/symbols.h"
#include "fuzz.h"

#include <elf.h>
#include <inttypes.h>
#include <string.h>

static unsigned long stat_inputs, stat_named;

/* The seed's mapping (fuzz_symbols_seed): the module file's offset 0x1000 at this address. */
#define SEED_START 0x7f0000001000ull

static void check_format(mallet_symbols_t *s, unsigned space, uint64_t addr)
{
    char whole[4096], part[24];
    mallet_symbols_format(s, space, addr, whole, sizeof whole);
    size_t n = strlen(whole);
    FUZZ_ASSERT(n > 0 && n < sizeof whole, "formatted name of %zu bytes", n);
    for (size_t len = 1; len <= sizeof part; len += 7) {
        memset(part, 'x', sizeof part);
        mallet_symbols_format(s, space, addr, part, len);
        size_t k = strnlen(part, len);
        FUZZ_ASSERT(k < len, "a name formatted into %zu bytes is not terminated", len);
        FUZZ_ASSERT(!strncmp(part, whole, k) && (k == n || k == len - 1),
                    "a name formatted into %zu bytes is not a prefix of the whole", len);
    }
}

static void resolve(mallet_symbols_t *s, unsigned space, uint64_t addr)
{
    mallet_sym_t sym;
    int rc = mallet_symbols_lookup(s, space, addr, &sym);
    FUZZ_ASSERT(rc == 0 || rc == 1, "lookup returned %d", rc);
    if (rc == 0) {
        FUZZ_ASSERT(!sym.module && !sym.path && !sym.func && !sym.offset && !sym.func_offset,
                    "an address in no mapping has a name");
    } else {
        FUZZ_ASSERT(sym.module && sym.path && strlen(sym.path) >= strlen(sym.module),
                    "an address in a mapping names no module");
        FUZZ_ASSERT(!sym.func || sym.func[0], "an empty function name");
        FUZZ_ASSERT(space == 0, "an address resolves in a space without maps");
        stat_named += sym.func != NULL;
    }
    check_format(s, space, addr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t tlen = nul ? (size_t)(nul - data) : size;
    const uint8_t *elf = nul ? nul + 1 : data + size;
    size_t elen = (size_t)(data + size - elf);
    fuzz_load(elf, elen);

    /* the maps text with each '@' made the module file's path */
    size_t plen = strlen(fuzz_path), ats = 0;
    for (size_t i = 0; i < tlen; i++)
        ats += data[i] == '@';
    char *text = malloc(tlen + ats * plen + 1);
    FUZZ_ASSERT(text, "out of memory");
    char *t = text;
    for (size_t i = 0; i < tlen; i++) {
        if (data[i] == '@')
            t = memcpy(t, fuzz_path, plen), t += plen;
        else
            *t++ = (char)data[i];
    }
    *t = 0;

    const char *maps[2] = {text, NULL};
    mallet_symbols_t *s = mallet_symbols_new(maps, 2);
    FUZZ_ASSERT(s, "out of memory");
    for (uint64_t off = 0; off < 0x3000; off += 0x3f)
        resolve(s, 0, SEED_START - 0x40 + off);
    static const uint64_t edges[] = {0, 1, SEED_START - 1, UINT64_MAX - 1, UINT64_MAX};
    for (size_t i = 0; i < sizeof edges / sizeof *edges; i++) {
        for (unsigned space = 0; space < 3; space++)
            resolve(s, space, edges[i]);
    }
    /* addresses the input chooses: its ELF part's words */
    for (size_t i = 0; i + 8 <= elen && i < 64 * 8; i += 8) {
        uint64_t a;
        memcpy(&a, elf + i, 8);
        resolve(s, 0, a);
        resolve(s, 0, SEED_START + (a & 0xffff));
    }
    mallet_symbols_free(s);
    free(text);
    stat_inputs++;
    return 0;
}

#ifdef MALLET_FUZZ_STANDALONE
/* ---- the standalone runner ------------------------------------------------------------------ */

static blob_t seed;

/* The seed: maps text naming the module ('@') at SEED_START with file offset 0x1000, a vdso line,
 * a deleted file and an anonymous mapping; then a NUL and the module, an ELF64 shared object
 * whose one PT_LOAD maps file offset 0 at vaddr 0x10000, with .symtab: alpha (0x11000, 0x40
 * bytes), beta and its local alias _beta_alias (0x11040, 0x80 bytes), gamma (0x11100, unsized;
 * a C++ name, g::gamma(), so that mutations reach the demangler), and a build ID note. */
static void make_seed(void)
{
    static const char text[] = "7f0000001000-7f0000003000 r-xp 00001000 08:01 42 @\n"
                               "7f0000010000-7f0000011000 r-xp 00000000 00:00 0 [vdso]\n"
                               "555500000000-555500001000 r-xp 00000000 08:01 7 /gone (deleted)\n"
                               "7f0000020000-7f0000021000 rw-p 00000000 00:00 0\n";
    static const char strtab[] = "\0alpha\0beta\0_beta_alias\0_ZN1g5gammaEv";
    /* a GNU build ID note (namesz 4, descsz 8, type 3, "GNU", 8 bytes): the reader looks for a
     * separate debug file by it (none is there: the module's own names stay) */
    static const uint8_t note[24] = {4,   0,   0,   0, 8,    0,    0, 0, 3, 0, 0, 0,
                                     'G', 'N', 'U', 0, 0xfe, 0xed, 1, 2, 3, 4, 5, 6};
    enum { PH = 64, SYM = PH + 56, NSYM = 5, STR = SYM + NSYM * 24, NOTE = 280, SH = 320, NSH = 5 };
    uint8_t elf[SH + NSH * 64] = {0};

    Elf64_Ehdr eh = {.e_type = ET_DYN,
                     .e_machine = EM_X86_64,
                     .e_version = EV_CURRENT,
                     .e_phoff = PH,
                     .e_shoff = SH,
                     .e_ehsize = 64,
                     .e_phentsize = 56,
                     .e_phnum = 1,
                     .e_shentsize = 64,
                     .e_shnum = NSH};
    memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64, eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    memcpy(elf, &eh, sizeof eh);
    Elf64_Phdr ph = {.p_type = PT_LOAD,
                     .p_flags = PF_R | PF_X,
                     .p_offset = 0,
                     .p_vaddr = 0x10000,
                     .p_filesz = 0x3000,
                     .p_memsz = 0x3000};
    memcpy(elf + PH, &ph, sizeof ph);
    const Elf64_Sym syms[NSYM] = {
        {0},
        {.st_name = 1,
         .st_info = ELF64_ST_INFO(STB_GLOBAL, STT_FUNC),
         .st_shndx = 1,
         .st_value = 0x11000,
         .st_size = 0x40},
        {.st_name = 7,
         .st_info = ELF64_ST_INFO(STB_GLOBAL, STT_FUNC),
         .st_shndx = 1,
         .st_value = 0x11040,
         .st_size = 0x80},
        {.st_name = 12,
         .st_info = ELF64_ST_INFO(STB_LOCAL, STT_FUNC),
         .st_shndx = 1,
         .st_value = 0x11040,
         .st_size = 0x80},
        {.st_name = 24,
         .st_info = ELF64_ST_INFO(STB_GLOBAL, STT_FUNC),
         .st_shndx = 1,
         .st_value = 0x11100,
         .st_size = 0},
    };
    memcpy(elf + SYM, syms, sizeof syms);
    memcpy(elf + STR, strtab, sizeof strtab);
    const Elf64_Shdr sh[NSH] = {
        {0},
        {.sh_type = SHT_PROGBITS,
         .sh_flags = SHF_ALLOC | SHF_EXECINSTR,
         .sh_addr = 0x11000,
         .sh_offset = 0x1000,
         .sh_size = 0x200},
        {.sh_type = SHT_SYMTAB,
         .sh_offset = SYM,
         .sh_size = sizeof syms,
         .sh_link = 3,
         .sh_info = 1,
         .sh_entsize = sizeof(Elf64_Sym)},
        {.sh_type = SHT_STRTAB, .sh_offset = STR, .sh_size = sizeof strtab},
        {.sh_type = SHT_NOTE, .sh_offset = NOTE, .sh_size = sizeof note},
    };
    _Static_assert(STR + sizeof strtab <= NOTE, "the note overlaps the strings");
    _Static_assert(NOTE + sizeof note <= SH, "the section headers overlap the note");
    memcpy(elf + NOTE, note, sizeof note);
    memcpy(elf + SH, sh, sizeof sh);

    seed.len = sizeof text + sizeof elf; /* the text's NUL separates the two */
    seed.b = malloc(seed.len);
    if (!seed.b) exit(2);
    memcpy(seed.b, text, sizeof text);
    memcpy(seed.b + sizeof text, elf, sizeof elf);
}

/* The seed must resolve as built, or the fuzzing starts from nothing. */
static void check_seed(void)
{
    fuzz_load(seed.b + strlen((const char *)seed.b) + 1,
              seed.len - strlen((const char *)seed.b) - 1);
    char text[512];
    snprintf(text, sizeof text, "7f0000001000-7f0000003000 r-xp 00001000 08:01 42 %s\n", fuzz_path);
    const char *maps[] = {text};
    mallet_symbols_t *s = mallet_symbols_new(maps, 1);
    FUZZ_ASSERT(s, "out of memory");
    static const struct {
        uint64_t addr;
        const char *want;
    } cases[] = {
        {SEED_START + 0x10, "alpha (%s+0x11010)"}, /* inside alpha */
        {SEED_START + 0x40,
         "alpha (%s+0x11040)"}, /* returns to beta's start: the call was alpha's */
        {SEED_START + 0x50, "beta (%s+0x11050)"},        /* the public alias */
        {SEED_START + 0x140, "g::gamma() (%s+0x11140)"}, /* unsized: reaches on; C++ */
        {SEED_START + 0x0, "%s+0x11000"},                /* before every function */
        {SEED_START + 0x2000, "0x7f0000003000"},         /* past the mapping */
    };
    const char *base = strrchr(fuzz_path, '/') + 1;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char got[256], want[256];
        snprintf(want, sizeof want, cases[i].want, base);
        mallet_symbols_format(s, 0, cases[i].addr, got, sizeof got);
        FUZZ_ASSERT(!strcmp(got, want), "seed: %#" PRIx64 " is %s, not %s", cases[i].addr, got,
                    want);
    }
    mallet_symbols_free(s);
}

int main(int argc, char **argv)
{
    fuzz_opts_t o;
    if (fuzz_args(argc, argv, "fuzz_symbols", 1, &o)) return 2;
    make_seed();
    if (o.seeds) {
        int rc = fuzz_write_seeds(o.seeds, &seed, 1);
        free(seed.b);
        return rc;
    }
    check_seed();
    LLVMFuzzerTestOneInput(seed.b, seed.len);
    FUZZ_ASSERT(stat_named > 0, "the seed names no function");
    unsigned long n = fuzz_loop(&seed, 1, o.iters, o.seconds);
    printf("fuzz_symbols: %lu inputs, no failure (%lu function names found)\n", n, stat_named);
    free(seed.b);
    return 0;
}
#endif
