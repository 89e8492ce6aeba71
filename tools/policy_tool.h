/* credit-policy's pieces (tools/credit-policy.c, tools/policy_*.c). */
#ifndef CA_TOOLS_POLICY_H
#define CA_TOOLS_POLICY_H

/* 0 when nothing widens, 1 when something does, 2 when a file cannot be
 * loaded (policy_diff.c). */
int policy_diff(const char *old_file, const char *new_file, int as_json);

/* credit-policy check ARGS (policy_check.c) */
int cmd_check(int argc, char **argv);

/* credit-policy explain ARGS (policy_explain.c) */
int cmd_explain(int argc, char **argv);

#endif
