/* The floor under any launcher: runs ARGS with execvp and nothing else, linked statically where
 * the toolchain can (bench/CMakeLists.txt). `mallet record -- CMD` is such a launcher (mallet
 * execs itself, then CMD), so bench/record_overhead.sh times this beside it: what an exec alone
 * costs on the machine, which no recorder can go below.
 * usage: exec_floor CMD [ARGS...] */
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2) return 2;
    execvp(argv[1], argv + 1);
    return 127;
}
