/* The ring shared by bench/ref_recorder.c's hooks and bench/offcore_launch.c's consumer. */
#ifndef REF_OFFCORE_H
#define REF_OFFCORE_H

#include <stdatomic.h>
#include <stdint.h>

enum {
    REF_RING = 8192, /* records of 32 bytes: 256 KiB */
    REF_BATCH = 64   /* records between two publications of the head */
};

/* The head and the tail each on its own page: the hooks write one, the consumer the other. */
typedef struct {
    _Atomic uint64_t head;
    char pad[4096 - 8];
    _Atomic uint64_t tail;
    uint64_t unread; /* set by a launcher that never reads: the hooks then never wait */
    char pad2[4096 - 16];
    uint64_t ring[REF_RING][4];
} ref_shared_t;

#endif
