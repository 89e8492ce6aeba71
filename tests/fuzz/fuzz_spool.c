/*
 * The audit spool's reader (lib/audit/spool.c, public API only): any file
 * contents, as a crash or a disk error may leave them, are read record by
 * record from the start until the end or the first torn record; every
 * record read ends inside the file, after it starts.  A record appended
 * after that reads back as written, and acknowledging everything empties
 * the spool.
 */
#include "fuzz.h"
#include "audit/spool.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const argv[] = {"XADD", "credit:audit", "*", ""};
    static const size_t      lens[] = {4, 12, 1, 0};
    char             err[256];
    ca_spool        *sp;
    ca_spool_record  rec;
    uint64_t         off = 0, end;
    int              rc;

    sp = ca_spool_open(fuzz_file(data, size), 1 << 20, err, sizeof(err));
    FUZZ_CHECK(sp != NULL, "%s", err);
    FUZZ_CHECK(ca_spool_size(sp) == size, "size");
    while ((rc = ca_spool_read(sp, off, &rec)) == 1) {
        FUZZ_CHECK(rec.end > off && rec.end <= size, "record end");
        FUZZ_CHECK(rec.argc >= 0 && rec.argc <= CA_SPOOL_ARGS_MAX, "argc");
        off = rec.end;
        ca_spool_record_free(&rec);
    }
    FUZZ_CHECK(rc == -1 || off == size, "the end of a file not at its end");

    end = ca_spool_size(sp);
    FUZZ_CHECK(ca_spool_append(sp, 7, "meta", 4, 4, argv, lens) == 0,
               "append");
    FUZZ_CHECK(ca_spool_read(sp, end, &rec) == 1, "read back");
    FUZZ_CHECK(rec.kind == 7 && rec.meta_len == 4
               && memcmp(rec.meta, "meta", 4) == 0 && rec.argc == 4
               && rec.lens[1] == 12 && memcmp(rec.argv[1], "credit:audit",
                                              12) == 0
               && rec.lens[3] == 0 && rec.end == ca_spool_size(sp),
               "the record read back differs");
    ca_spool_record_free(&rec);
    FUZZ_CHECK(ca_spool_ack(sp, ca_spool_size(sp)) == 0
               && ca_spool_empty(sp) && ca_spool_size(sp) == 0, "ack");
    ca_spool_close(sp);
    return 0;
}
