/* The work report's renderers (tools/audit_render.c) over the report's
 * JSON model (tools/audit_report.c). */
#ifndef CA_TOOLS_AUDIT_REPORT_H
#define CA_TOOLS_AUDIT_REPORT_H

#include <stdio.h>

#include <jansson.h>

void render_md(FILE *out, json_t *m);
void render_csv(FILE *out, json_t *m);
void render_html(FILE *out, json_t *m);

#endif
