/*
 * Durable audit spool (contract §7): when Redis cannot take an entry, the
 * command that would have written it is appended to a per-worker file and
 * replayed, in order, when Redis returns.
 *
 * File format: a sequence of records, each
 *     u32be body_len | body | 4 bytes: SHA-256(body)[0..3]
 * body:
 *     u8 kind | u32be meta_len | meta | u32be argc | (u32be len | bytes)*
 * A torn record at the end (a crash mid-append) fails its check and ends
 * the readable part of the file.
 */
#ifndef CA_SPOOL_H
#define CA_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#define CA_SPOOL_ARGS_MAX  512

typedef struct ca_spool ca_spool;

typedef struct {
    int          kind;
    const char  *meta;
    size_t       meta_len;
    int          argc;
    const char  *argv[CA_SPOOL_ARGS_MAX];
    size_t       lens[CA_SPOOL_ARGS_MAX];
    uint64_t     end;           /* file offset just past this record */
    char        *buf;           /* owns the bytes above */
} ca_spool_record;

/* Opens (creating) the file for appending; max_bytes bounds it. */
ca_spool *ca_spool_open(const char *path, uint64_t max_bytes, char *err,
                        size_t errlen);
void ca_spool_close(ca_spool *sp);

/* 0, or -1 when full or on a write error (nothing is then appended). */
int ca_spool_append(ca_spool *sp, int kind, const char *meta,
                    size_t meta_len, int argc, const char *const *argv,
                    const size_t *lens);
/* fsync if anything was appended since the last sync. */
int ca_spool_sync(ca_spool *sp);

uint64_t ca_spool_size(const ca_spool *sp);
/* No record waiting for replay. */
int ca_spool_empty(const ca_spool *sp);

/*
 * Reads the record at `offset` (replay reads ahead of what is acked).
 * 1: a record; 0: end of file; -1: a torn or corrupt record (the rest of
 * the file is unreadable and is dropped by ca_spool_ack()).
 */
int ca_spool_read(ca_spool *sp, uint64_t offset, ca_spool_record *rec);
void ca_spool_record_free(ca_spool_record *rec);

/* Everything before `offset` reached Redis; when that is the whole file
 * it is truncated so that it never grows without bound. */
int ca_spool_ack(ca_spool *sp, uint64_t offset);
uint64_t ca_spool_acked(const ca_spool *sp);

#endif
