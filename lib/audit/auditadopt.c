/*
 * Spools of workers that are gone (a reload, a crash): their entries are
 * appended to ours and replayed with them.  rename() decides which worker
 * takes a file.  A file holding records this version cannot replay
 * (written by another version of the module) is set aside, not dropped.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "auditbatch.h"

/* Appends the records of one spool file to ours.  Number of entries, or
 * -1 (unreadable, ours full: the file is left as it was), or -2 (records
 * this version cannot replay: nothing taken). */
static long
ca_aw_adopt(ca_aw *aw, const char *path)
{
    int               rc;
    char              err[256];
    long              n;
    uint64_t          off;
    ca_spool         *sp;
    ca_spool_record   rec;

    if (!ca_aw_has_spool(aw)) {
        return -1;
    }
    sp = ca_spool_open(path, (uint64_t) -1, err, sizeof(err));
    if (sp == NULL) {
        ca_aw_log(aw, CA_AW_LOG_ERR, "cannot adopt audit spool: %s", err);
        return -1;
    }

    /* first look: every record must be an entry of this version */
    for (off = 0; (rc = ca_spool_read(sp, off, &rec)) == 1; off = rec.end) {
        int  kind = rec.kind;

        ca_spool_record_free(&rec);
        if (kind != CA_AW_RECORD_ENTRY) {
            ca_spool_close(sp);
            return -2;
        }
    }
    if (rc < 0) {
        ca_aw_log(aw, CA_AW_LOG_WARN, "audit spool %s ends in a torn record "
                  "(a crash while writing it)", path);
    }

    n = 0;
    for (off = 0; (rc = ca_spool_read(sp, off, &rec)) == 1; off = rec.end) {
        if (ca_aw_spool_record(aw, &rec) != 0) {
            ca_spool_record_free(&rec);
            ca_spool_close(sp);
            /* the entries taken so far come again: duplicates, skipped */
            return -1;
        }
        ca_spool_record_free(&rec);
        n++;
    }
    ca_spool_close(sp);
    return n;
}


/* A file taken (renamed to `claimed`): its entries join ours; given back
 * under `orphan` if ours is full; set aside if another version's. */
void
ca_aw_adopt_claimed(ca_aw *aw, const char *claimed, const char *orphan)
{
    long  n;
    char  aside[4096];

    n = ca_aw_adopt(aw, claimed);
    if (n == -2) {
        snprintf(aside, sizeof(aside), "%.4000s.foreign", orphan);
        (void) rename(claimed, aside);
        ca_aw_log(aw, CA_AW_LOG_ALERT, "audit spool %s holds records of "
                  "another module version: kept as %s, to be replayed by "
                  "that version", orphan, aside);
        return;
    }
    if (n < 0) {
        if (strcmp(claimed, orphan) != 0) {
            (void) rename(claimed, orphan);
        }
        return;
    }
    ca_aw_log(aw, CA_AW_LOG_INFO, "adopted audit spool %s (%ld entries)",
              orphan, n);
    (void) unlink(claimed);
}


void
ca_aw_adopt_dir(ca_aw *aw, const char *dir, long own_pid)
{
    long            pid;
    DIR            *d;
    char            orphan[2048], claimed[4096];
    const char     *dot;
    struct dirent  *de;

    d = opendir(dir);
    if (d == NULL) {
        return;
    }

    while ((de = readdir(d)) != NULL) {
        if (sscanf(de->d_name, "worker-%ld.spool", &pid) != 1
            || (dot = strchr(de->d_name + 7, '.')) == NULL
            || strcmp(dot, ".spool") != 0
            || pid == own_pid
            || kill((pid_t) pid, 0) == 0 || errno != ESRCH)
        {
            continue;
        }

        snprintf(orphan, sizeof(orphan), "%s/%s", dir, de->d_name);
        snprintf(claimed, sizeof(claimed), "%s/adopted-%ld-%s", dir, own_pid,
                 de->d_name);
        if (rename(orphan, claimed) != 0) {
            continue;                   /* another worker took it */
        }

        ca_aw_adopt_claimed(aw, claimed, orphan);
    }

    closedir(d);
}
