/*
 * A `revocation` entry (contract §3, §7): a consent withdrawn, by the
 * enterprise that gave it (a signed withdrawal at the gateway's endpoint)
 * or by the platform.  Its content is final when written, so it is sealed
 * into chain 0 like a refusal, and its owner learns its fate the same way.
 */
#include <string.h>

#include "auditbatch.h"
#include "auditschema.h"
#include "core/core.h"

int
ca_aw_revocation(ca_aw *aw, const ca_aw_revoked *rv, int online,
                 void *owner, ca_aw_job **job)
{
    ca_entry        e;
    ca_audit_facts  f;

    /* what the trail may hold: the enterprise's USCC, nothing else that
     * names anyone, and one of the two words contract §7 gives `by` */
    if (rv->enterprise == NULL
        || !ca_uscc_valid(rv->enterprise, strlen(rv->enterprise))
        || rv->jti == NULL || rv->jti[0] == '\0' || rv->by == NULL
        || (strcmp(rv->by, "enterprise") != 0
            && strcmp(rv->by, "platform") != 0))
    {
        ca_aw_log(aw, CA_AW_LOG_ERR, "revocation entry refused: it needs a "
                  "valid USCC, a consent and by enterprise or platform");
        return CA_AW_LOST;
    }
    memset(&f, 0, sizeof(f));
    f.ts = rv->ts;
    f.gw = aw->gw;
    f.enterprise = rv->enterprise;
    f.jti.s = rv->jti;
    f.jti.len = strlen(rv->jti);
    f.by = rv->by;
    if (ca_audit_build(&e, CA_EV_REVOCATION, &f) != 0) {
        return CA_AW_LOST;
    }
    return ca_aw_final(aw, &e, online, owner, job);
}
