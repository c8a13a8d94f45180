/* See symbols.h. A maps-text parser, a small ELF64 symbol reader and a per-module cache.
 *
 * The ELF reader trusts nothing in the file: every header is copied out with memcpy (offsets in
 * a hostile file need not be aligned) after its range has been checked against the file size,
 * and every symbol name must end with a NUL inside its string table. */
#define _GNU_SOURCE
#include "symbols.h"

#include <elf.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libiberty/demangle.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct fsym {
    uint64_t value, size;
    const char *name; /* points into the module's mapped string table */
    char *demangled;  /* name as C++ writes it (fsym_display), or NULL */
    uint8_t rank;     /* alias preference: lower wins among symbols at one address */
    uint8_t tried;    /* demangling was tried */
} fsym_t;

typedef struct load_seg {
    uint64_t offset, vaddr, filesz;
} load_seg_t;

typedef struct module {
    char *path; /* as the maps text names it */
    size_t path_len;
    const char *base; /* basename, inside path */
    int parsed;       /* the file was looked at (successfully or not) */
    void *map;
    size_t map_len;
    load_seg_t *loads;
    size_t nloads;
    fsym_t *syms; /* sorted by value, one per address */
    size_t nsyms;
    int full_symtab; /* syms come from a .symtab (every function), not .dynsym (the exports) */
    uint8_t build_id[64];
    size_t build_id_len; /* 0: none */
} module_t;

typedef struct mapping {
    uint64_t start, end, offset;
    module_t *mod;
} mapping_t;

/* One snapshot of an address space's map: sorted by start, no overlaps. */
typedef struct layer {
    mapping_t *maps;
    size_t n;
} layer_t;

/* An address space's snapshots, newest first: an address resolves in the newest that maps it,
 * so that a library unloaded before the last one was taken is still found. */
typedef struct space {
    layer_t *layers;
    size_t nlayers;
} space_t;

struct mallet_symbols {
    module_t **mods;
    size_t nmods;
    /* mods by path (open addressing, a power of two at least twice nmods): a trace's maps text
     * is untrusted, and a search of mods per line grew with the square of its distinct paths */
    module_t **index;
    size_t index_cap;
    space_t *spaces;
    unsigned nspaces;
};

/* ---- the ELF64 reader ---------------------------------------------------------------------- */

/* True if [off, off + len) lies inside a file of size bytes. */
static int in_file(uint64_t off, uint64_t len, uint64_t size)
{
    return off <= size && len <= size - off;
}

static int cmp_fsym(const void *a, const void *b)
{
    const fsym_t *x = a, *y = b;
    if (x->value != y->value) return x->value < y->value ? -1 : 1;
    if (x->rank != y->rank) return x->rank < y->rank ? -1 : 1;
    return strcmp(x->name, y->name); /* deterministic whatever qsort does with equal keys */
}

/* Among aliases at one address prefer a sized, public, global name: "malloc" over
 * "__libc_malloc", and the weak "getpid" over the global "__getpid". */
static uint8_t sym_rank(const Elf64_Sym *s, const char *name)
{
    uint8_t r = 0;
    if (s->st_size == 0) r += 4;
    if (name[0] == '_') r += 2;
    if (ELF64_ST_BIND(s->st_info) != STB_GLOBAL) r += 1;
    return r;
}

/* The GNU build ID among the notes of a SHT_NOTE section's bytes, if there is one. */
static void read_build_id(module_t *m, const uint8_t *p, uint64_t len)
{
    while (len >= 12) {
        uint32_t namesz, descsz, type;
        memcpy(&namesz, p, 4);
        memcpy(&descsz, p + 4, 4);
        memcpy(&type, p + 8, 4);
        uint64_t name_pad = ((uint64_t)namesz + 3) & ~3ull,
                 desc_pad = ((uint64_t)descsz + 3) & ~3ull;
        if (name_pad > len - 12 || desc_pad > len - 12 - name_pad) return;
        if (type == NT_GNU_BUILD_ID && namesz == 4 && !memcmp(p + 12, "GNU", 4) && descsz >= 2 &&
            descsz <= sizeof m->build_id) {
            memcpy(m->build_id, p + 12 + name_pad, descsz);
            m->build_id_len = descsz;
            return;
        }
        p += 12 + name_pad + desc_pad;
        len -= 12 + name_pad + desc_pad;
    }
}

/* Collects the function symbols of symbol table section sh. Returns the count added, or -1 when
 * out of memory. Malformed tables are skipped, not errors: a bad module just resolves to no
 * names. */
static long read_symtab(module_t *m, const uint8_t *file, uint64_t size, const Elf64_Shdr *sh,
                        const uint8_t *shtab, uint64_t shentsize, uint64_t shnum)
{
    if (sh->sh_entsize < sizeof(Elf64_Sym) || !in_file(sh->sh_offset, sh->sh_size, size)) return 0;
    if (sh->sh_link == 0 || sh->sh_link >= shnum) return 0;
    Elf64_Shdr strsh;
    memcpy(&strsh, shtab + (uint64_t)sh->sh_link * shentsize, sizeof strsh);
    if (strsh.sh_type != SHT_STRTAB || !in_file(strsh.sh_offset, strsh.sh_size, size)) return 0;
    const char *strtab = (const char *)file + strsh.sh_offset;
    uint64_t nsym = sh->sh_size / sh->sh_entsize;
    if (nsym == 0) return 0;
    fsym_t *out = malloc(nsym * sizeof *out);
    if (!out) return -1;
    size_t n = 0;
    for (uint64_t i = 0; i < nsym; i++) {
        Elf64_Sym s;
        memcpy(&s, file + sh->sh_offset + i * sh->sh_entsize, sizeof s);
        unsigned type = ELF64_ST_TYPE(s.st_info);
        if (type != STT_FUNC && type != STT_GNU_IFUNC) continue;
        if (s.st_shndx == SHN_UNDEF || s.st_value == 0 || s.st_name >= strsh.sh_size) continue;
        const char *name = strtab + s.st_name;
        if (!memchr(name, 0, strsh.sh_size - s.st_name) || !name[0]) continue;
        out[n].value = s.st_value;
        out[n].size = s.st_size;
        out[n].name = name;
        out[n].demangled = NULL;
        out[n].rank = sym_rank(&s, name);
        out[n].tried = 0;
        n++;
    }
    if (n == 0) {
        free(out);
        return 0;
    }
    qsort(out, n, sizeof *out, cmp_fsym);
    size_t k = 0; /* keep the preferred alias of each address */
    for (size_t i = 0; i < n; i++)
        if (k == 0 || out[k - 1].value != out[i].value) out[k++] = out[i];
    m->syms = out;
    m->nsyms = k;
    return (long)k;
}

/* Parses the mapped ELF file: PT_LOAD segments and function symbols. Returns 0, or -1 when out of
 * memory; a file that is not a well-formed ELF64 leaves the module without segments or symbols. */
static int parse_elf(module_t *m, const uint8_t *file, uint64_t size)
{
    Elf64_Ehdr eh;
    if (size < sizeof eh) return 0;
    memcpy(&eh, file, sizeof eh);
    if (memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
        eh.e_ident[EI_DATA] != ELFDATA2LSB)
        return 0;

    if (eh.e_phentsize >= sizeof(Elf64_Phdr) &&
        in_file(eh.e_phoff, (uint64_t)eh.e_phnum * eh.e_phentsize, size) && eh.e_phnum) {
        m->loads = malloc(eh.e_phnum * sizeof *m->loads);
        if (!m->loads) return -1;
        for (unsigned i = 0; i < eh.e_phnum; i++) {
            Elf64_Phdr ph;
            memcpy(&ph, file + eh.e_phoff + (uint64_t)i * eh.e_phentsize, sizeof ph);
            if (ph.p_type != PT_LOAD) continue;
            m->loads[m->nloads++] = (load_seg_t){ph.p_offset, ph.p_vaddr, ph.p_filesz};
        }
    }

    if (eh.e_shentsize < sizeof(Elf64_Shdr) || eh.e_shoff == 0) return 0;
    uint64_t shnum = eh.e_shnum;
    if (shnum == 0) { /* more than SHN_LORESERVE sections: the count is in section 0 */
        if (!in_file(eh.e_shoff, sizeof(Elf64_Shdr), size)) return 0;
        Elf64_Shdr s0;
        memcpy(&s0, file + eh.e_shoff, sizeof s0);
        shnum = s0.sh_size;
    }
    if (shnum == 0 || shnum > size / eh.e_shentsize ||
        !in_file(eh.e_shoff, shnum * eh.e_shentsize, size))
        return 0;
    const uint8_t *shtab = file + eh.e_shoff;
    for (uint64_t i = 0; i < shnum && !m->build_id_len; i++) {
        Elf64_Shdr sh;
        memcpy(&sh, shtab + i * eh.e_shentsize, sizeof sh);
        if (sh.sh_type == SHT_NOTE && in_file(sh.sh_offset, sh.sh_size, size))
            read_build_id(m, file + sh.sh_offset, sh.sh_size);
    }
    /* .symtab has every function; .dynsym (always there in a shared object) only the exported
     * ones, but it is all a stripped file has. */
    const uint32_t order[2] = {SHT_SYMTAB, SHT_DYNSYM};
    for (int pass = 0; pass < 2; pass++) {
        for (uint64_t i = 0; i < shnum; i++) {
            Elf64_Shdr sh;
            memcpy(&sh, shtab + i * eh.e_shentsize, sizeof sh);
            if (sh.sh_type != order[pass]) continue;
            long got = read_symtab(m, file, size, &sh, shtab, eh.e_shentsize, shnum);
            if (got < 0) return -1;
            if (got > 0) {
                m->full_symtab = pass == 0;
                return 0;
            }
        }
    }
    return 0;
}

/* Maps path read-only if it is a regular file: *len its size. NULL if not. A maps line or a
 * build ID may name anything, and opening a FIFO or a device can block or have side effects (a
 * watchdog, a tape drive): the type is checked before the open, and again on what was opened. */
static void *map_regular(const char *path, size_t *len)
{
    struct stat sb;
    if (stat(path, &sb) || !S_ISREG(sb.st_mode)) return NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) return NULL;
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode) || sb.st_size <= 0 ||
        (uint64_t)sb.st_size > SIZE_MAX) {
        close(fd);
        return NULL;
    }
    void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return NULL;
    *len = (size_t)sb.st_size;
    return p;
}

/* A stripped module names only its exports (.dynsym). Its separate debug file has every
 * function: DIR/.build-id/XX/REST.debug, by the module's build ID, where Debian's -dbg and
 * -dbgsym packages put it and gdb and perf look (DIR: $MALLET_DEBUG_DIR, else /usr/lib/debug).
 * Used only if it is an ELF with a .symtab and the same build ID (a stale one would name the
 * wrong functions); its names then replace the module's. Returns -1 when out of memory. */
static int module_load_debug(module_t *m)
{
    if (m->full_symtab || !m->build_id_len) return 0;
    const char *dir = getenv("MALLET_DEBUG_DIR");
    char path[4096];
    int k = snprintf(path, sizeof path, "%s/.build-id/%02x/", dir && *dir ? dir : "/usr/lib/debug",
                     m->build_id[0]);
    for (size_t i = 1; i < m->build_id_len && k > 0 && (size_t)k < sizeof path - 8; i++)
        k += snprintf(path + k, sizeof path - (size_t)k, "%02x", m->build_id[i]);
    if (k <= 0 || (size_t)k >= sizeof path - 8) return 0;
    memcpy(path + k, ".debug", 7);
    module_t d = {0};
    void *p = map_regular(path, &d.map_len);
    if (!p) return 0;
    int rc = parse_elf(&d, p, d.map_len);
    free(d.loads); /* the module's own segments place its addresses */
    if (rc || !d.full_symtab || d.build_id_len != m->build_id_len ||
        memcmp(d.build_id, m->build_id, m->build_id_len)) {
        free(d.syms);
        munmap(p, d.map_len);
        return rc;
    }
    free(m->syms);
    if (m->map) munmap(m->map, m->map_len);
    m->syms = d.syms;
    m->nsyms = d.nsyms;
    m->full_symtab = 1;
    m->map = p;
    m->map_len = d.map_len;
    return 0;
}

/* Opens and parses the module's file once (and its debug file, if it is stripped). Only
 * absolute paths of regular files are opened. */
static int module_load(module_t *m)
{
    if (m->parsed) return 0;
    m->parsed = 1;
    size_t plen = strlen(m->path);
    static const char deleted[] = " (deleted)";
    if (m->path[0] != '/' ||
        (plen >= sizeof deleted - 1 && !strcmp(m->path + plen - (sizeof deleted - 1), deleted)))
        return 0;
    m->map = map_regular(m->path, &m->map_len);
    if (!m->map) return 0;
    int rc = parse_elf(m, m->map, m->map_len);
    if (rc == 0) rc = module_load_debug(m);
    if (m->nsyms == 0) { /* names are the only thing kept pointing into the file */
        munmap(m->map, m->map_len);
        m->map = NULL;
    }
    return rc;
}

/* File offset -> module virtual address through the PT_LOAD segment holding that offset. */
static int module_vaddr(const module_t *m, uint64_t file_off, uint64_t *vaddr)
{
    for (size_t i = 0; i < m->nloads; i++) {
        const load_seg_t *l = &m->loads[i];
        if (file_off >= l->offset && file_off - l->offset < l->filesz) {
            *vaddr = file_off - l->offset + l->vaddr;
            return 1;
        }
    }
    return 0;
}

static fsym_t *module_func(const module_t *m, uint64_t vaddr)
{
    size_t lo = 0, hi = m->nsyms; /* first symbol with value > vaddr */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->syms[mid].value <= vaddr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0) return NULL;
    fsym_t *s = &m->syms[lo - 1];
    if (s->size == 0 || vaddr - s->value < s->size) return s;
    return NULL;
}

/* The name to show: a C++ symbol as its source says it ("cache::Store::grow(unsigned int)", not
 * "_ZN5cache5Store4growEj"), by libiberty's demangler, the one binutils' c++filt uses. Once per
 * symbol, at its first lookup: a module has thousands and a trace names a few. The names come
 * from files a trace names, so untrusted: the demangler bounds its own recursion, and a name too
 * long for any real program is shown as it is. */
static const char *fsym_display(fsym_t *f)
{
    if (!f->tried) {
        f->tried = 1;
        if (f->name[0] == '_' && f->name[1] == 'Z' && strnlen(f->name, 1 << 16) < (1 << 16))
            f->demangled = cplus_demangle(f->name, DMGL_PARAMS | DMGL_ANSI);
    }
    return f->demangled ? f->demangled : f->name;
}

/* ---- maps text ----------------------------------------------------------------------------- */

static const char *parse_hex(const char *p, const char *end, uint64_t *out)
{
    uint64_t v = 0;
    int n = 0;
    for (; p < end; p++, n++) {
        unsigned d;
        if (*p >= '0' && *p <= '9')
            d = (unsigned)(*p - '0');
        else if (*p >= 'a' && *p <= 'f')
            d = (unsigned)(*p - 'a' + 10);
        else if (*p >= 'A' && *p <= 'F')
            d = (unsigned)(*p - 'A' + 10);
        else
            break;
        if (n == 16) return NULL;
        v = v << 4 | d;
    }
    if (n == 0) return NULL;
    *out = v;
    return p;
}

static const char *skip_spaces(const char *p, const char *end)
{
    while (p < end && *p == ' ')
        p++;
    return p;
}

static const char *skip_token(const char *p, const char *end)
{
    while (p < end && *p != ' ')
        p++;
    return p;
}

static size_t path_hash(const char *path, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)path[i]) * 0x100000001b3ull;
    return (size_t)(h ^ h >> 32);
}

/* The slot of path in the index: its module's, or the empty one where it goes. */
static module_t **index_slot(const mallet_symbols_t *s, const char *path, size_t len)
{
    size_t mask = s->index_cap - 1, i = path_hash(path, len) & mask;
    while (s->index[i] && (s->index[i]->path_len != len || memcmp(s->index[i]->path, path, len)))
        i = (i + 1) & mask;
    return &s->index[i];
}

static module_t *module_get(mallet_symbols_t *s, const char *path, size_t len)
{
    if (2 * (s->nmods + 1) > s->index_cap) {
        size_t cap = s->index_cap ? 2 * s->index_cap : 64;
        module_t **old = s->index;
        if (!(s->index = calloc(cap, sizeof *s->index))) return s->index = old, NULL;
        s->index_cap = cap;
        for (size_t i = 0; i < s->nmods; i++)
            *index_slot(s, s->mods[i]->path, s->mods[i]->path_len) = s->mods[i];
        free(old);
    }
    module_t **slot = index_slot(s, path, len);
    if (*slot) return *slot;
    module_t **nm = realloc(s->mods, (s->nmods + 1) * sizeof *nm);
    if (!nm) return NULL;
    s->mods = nm;
    module_t *m = calloc(1, sizeof *m);
    if (!m || !(m->path = malloc(len + 1))) return free(m), NULL;
    memcpy(m->path, path, len);
    m->path[len] = 0;
    m->path_len = len;
    const char *slash = strrchr(m->path, '/');
    m->base = slash && slash[1] ? slash + 1 : m->path;
    s->mods[s->nmods++] = m;
    *slot = m;
    return m;
}

static int cmp_mapping(const void *a, const void *b)
{
    const mapping_t *x = a, *y = b;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Parses "start-end perms offset dev inode [path]" lines; an empty line starts an older snapshot
 * (mallet_symbols_new). Lines that do not parse and mappings without a path (anonymous memory)
 * are skipped. Returns 0 or -1 when out of memory. */
static int parse_maps(mallet_symbols_t *s, space_t *sp, const char *text)
{
    size_t cap = 0, layers_cap = 0;
    layer_t *ly = NULL;
    const char *line = text;
    while (line && *line) {
        const char *end = strchr(line, '\n');
        const char *next = end ? end + 1 : NULL;
        if (!end) end = line + strlen(line);
        if (end == line) { /* the next snapshot */
            line = next;
            if (ly && ly->n) ly = NULL;
            continue;
        }
        uint64_t start = 0, stop = 0, off = 0;
        const char *p = parse_hex(line, end, &start);
        p = p && p < end && *p == '-' ? parse_hex(p + 1, end, &stop) : NULL;
        if (p) p = skip_token(skip_spaces(p, end), end);      /* perms */
        if (p) p = parse_hex(skip_spaces(p, end), end, &off); /* offset */
        if (p) p = skip_token(skip_spaces(p, end), end);      /* device */
        if (p) p = skip_token(skip_spaces(p, end), end);      /* inode */
        if (p) p = skip_spaces(p, end);                       /* the path is the rest */
        line = next;
        if (!p || p == end || stop <= start) continue;
        module_t *m = module_get(s, p, (size_t)(end - p));
        if (!m) return -1;
        if (!ly) {
            if (sp->nlayers == layers_cap) {
                layers_cap = layers_cap ? 2 * layers_cap : 4;
                layer_t *nl = realloc(sp->layers, layers_cap * sizeof *nl);
                if (!nl) return -1;
                sp->layers = nl;
            }
            ly = &sp->layers[sp->nlayers++];
            *ly = (layer_t){0};
            cap = 0;
        }
        if (ly->n == cap) {
            cap = cap ? 2 * cap : 64;
            mapping_t *nm = realloc(ly->maps, cap * sizeof *nm);
            if (!nm) return -1;
            ly->maps = nm;
        }
        ly->maps[ly->n++] = (mapping_t){start, stop, off, m};
    }
    for (size_t i = 0; i < sp->nlayers; i++)
        qsort(sp->layers[i].maps, sp->layers[i].n, sizeof *sp->layers[i].maps, cmp_mapping);
    return 0;
}

/* The mapping of layer ly that holds addr, or NULL. */
static const mapping_t *layer_find(const layer_t *ly, uint64_t addr)
{
    size_t lo = 0, hi = ly->n; /* first mapping starting above addr */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ly->maps[mid].start <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo == 0 || addr >= ly->maps[lo - 1].end ? NULL : &ly->maps[lo - 1];
}

/* ---- public -------------------------------------------------------------------------------- */

mallet_symbols_t *mallet_symbols_new(const char *const *maps, unsigned nspaces)
{
    mallet_symbols_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->nspaces = nspaces;
    s->spaces = calloc(nspaces ? nspaces : 1, sizeof *s->spaces);
    if (!s->spaces) return mallet_symbols_free(s), NULL;
    for (unsigned i = 0; i < nspaces; i++)
        if (maps && maps[i] && parse_maps(s, &s->spaces[i], maps[i]))
            return mallet_symbols_free(s), NULL;
    return s;
}

void mallet_symbols_free(mallet_symbols_t *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->nmods; i++) {
        module_t *m = s->mods[i];
        if (m->map) munmap(m->map, m->map_len);
        free(m->loads);
        for (size_t j = 0; j < m->nsyms; j++)
            free(m->syms[j].demangled);
        free(m->syms);
        free(m->path);
        free(m);
    }
    free(s->mods);
    free(s->index);
    for (unsigned i = 0; s->spaces && i < s->nspaces; i++) {
        for (size_t j = 0; j < s->spaces[i].nlayers; j++)
            free(s->spaces[i].layers[j].maps);
        free(s->spaces[i].layers);
    }
    free(s->spaces);
    free(s);
}

int mallet_symbols_lookup(mallet_symbols_t *s, unsigned space, uint64_t addr, mallet_sym_t *out)
{
    memset(out, 0, sizeof *out);
    if (space >= s->nspaces) return 0;
    const space_t *sp = &s->spaces[space];
    const mapping_t *mp = NULL;
    for (size_t i = 0; !mp && i < sp->nlayers; i++)
        mp = layer_find(&sp->layers[i], addr);
    if (!mp) return 0;
    module_t *m = mp->mod;
    out->module = m->base;
    out->path = m->path;
    uint64_t file_off = addr - mp->start + mp->offset;
    out->offset = file_off;
    /* Out of memory while parsing only costs the names; the address still resolves. */
    (void)module_load(m);
    uint64_t vaddr;
    if (!module_vaddr(m, file_off, &vaddr)) return 1;
    out->offset = vaddr;
    fsym_t *f = vaddr ? module_func(m, vaddr - 1) : NULL;
    if (f) {
        out->func = fsym_display(f);
        out->func_offset = vaddr - f->value;
    }
    return 1;
}

char *mallet_symbols_format(mallet_symbols_t *s, unsigned space, uint64_t addr, char *buf,
                            size_t len)
{
    mallet_sym_t sym;
    if (len == 0) return buf;
    if (!s || !mallet_symbols_lookup(s, space, addr, &sym))
        snprintf(buf, len, "0x%" PRIx64, addr);
    else if (sym.func)
        snprintf(buf, len, "%s (%s+0x%" PRIx64 ")", sym.func, sym.module, sym.offset);
    else
        snprintf(buf, len, "%s+0x%" PRIx64, sym.module, sym.offset);
    return buf;
}
