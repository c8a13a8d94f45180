/* Callsite resolution: runtime address -> "function (module+0xVADDR)".
 *
 * A trace records raw return addresses and, in its MAPS chunk, the text of /proc/self/maps. To
 * name an address we find its mapping, turn it into the module's own virtual address (through the
 * PT_LOAD program headers, so the number is what addr2line -e MODULE expects), and look that up in
 * the module's .symtab (or .dynsym when stripped).
 *
 * Every module file named in a trace is untrusted input: it is read by a small ELF64 reader that
 * checks each offset and size against the file before use, and a module that cannot be read or
 * parsed simply resolves to "module+0xOFFSET". Each module file is opened and parsed at most once
 * per mallet_symbols_t, however many address spaces (trace files) name it.
 *
 * Resolution is best effort and looks at the files as they are now: a module rebuilt since the
 * recording gives wrong names. Library code: nothing here prints. */
#ifndef MALLET_ANALYZE_SYMBOLS_H
#define MALLET_ANALYZE_SYMBOLS_H

#include <stddef.h>
#include <stdint.h>

typedef struct mallet_symbols mallet_symbols_t;

/* What one address resolves to. The strings belong to the mallet_symbols_t and live as long as it.
 */
typedef struct mallet_sym {
    const char *module;   /* basename of the mapped file (or "[vdso]" etc.); NULL: no mapping */
    const char *path;     /* the mapping's full path as the maps text gives it; NULL: no mapping */
    uint64_t offset;      /* module virtual address (or file offset if the ELF could not be read) */
    const char *func;     /* containing function; NULL if unknown */
    uint64_t func_offset; /* address - function start */
} mallet_sym_t;

/* Creates a resolver for nspaces address spaces; maps[i] is the /proc/PID/maps text of space i
 * (NULL or "" if unknown: its addresses print as 0xADDR), or several, newest first, an empty
 * line between each: an address resolves in the newest that maps it (a library unloaded since
 * an older one was taken is named from that one). The texts are parsed now and need not outlive
 * the call. Returns NULL only when out of memory. */
mallet_symbols_t *mallet_symbols_new(const char *const *maps, unsigned nspaces);
void mallet_symbols_free(mallet_symbols_t *s);

/* Resolves a return address (the function is looked up at addr - 1, so a call that is the last
 * instruction of its function still names that function). Returns 1 if addr lies in a mapping
 * (out->module set, out->func set if a symbol was found), 0 if not (out zeroed). */
int mallet_symbols_lookup(mallet_symbols_t *s, unsigned space, uint64_t addr, mallet_sym_t *out);

/* Formats addr as "func (module+0xOFFSET)", "module+0xOFFSET" or "0xADDR" into buf (always
 * NUL-terminated when len > 0). Returns buf. */
char *mallet_symbols_format(mallet_symbols_t *s, unsigned space, uint64_t addr, char *buf,
                            size_t len);

#endif
