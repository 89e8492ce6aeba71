/*
 * ca_pii_find / ca_looks_personal: the one table of personal-identifier
 * forms (lib/core/pii.h) that keeps them out of the audit, the request id,
 * the consent id and the headers passed to the bank.  Per form: what must
 * be found (with the form's name) and what must not; then what is never
 * personal (USCCs, dates, amounts, request ids).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "audit/audit.h"
#include "core/pii.h"

typedef struct {
    const char  *text;
    const char  *form;          /* NULL: must not be found */
} pii_case;

static void
run(const pii_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *got = ca_pii_find(cases[i].text, strlen(cases[i].text));

        if ((got == NULL) != (cases[i].form == NULL)
            || (got && strcmp(got, cases[i].form) != 0))
        {
            fail_msg("\"%s\": found %s, want %s", cases[i].text,
                     got ? got : "nothing",
                     cases[i].form ? cases[i].form : "nothing");
        }
        assert_int_equal(ca_looks_personal(cases[i].text,
                                           strlen(cases[i].text)),
                         cases[i].form != NULL);
    }
}

#define RUN(cases)  run(cases, sizeof(cases) / sizeof(cases[0]))

#define ID      "resident ID number"
#define MOBILE  "mobile number"
#define PHONE   "landline number"
#define CARD    "bank card number"
#define PASS    "passport number"
#define PERMIT  "travel permit number"
#define HKID    "Hong Kong identity card number"
#define TWID    "Taiwan identity card number"
#define EMAIL   "email address"


static void
test_resident_id(void **state)
{
    static const pii_case cases[] = {
        { "11010519491231002X", ID },               /* check character X */
        { "11010519491231002x", ID },
        { "440304198511204524", ID },
        { "110101199003071233", ID },
        { "110101199003071234", ID },   /* check mistyped: still a person */
        { "id_11010519491231002X_end", ID },
        { "owner=11010519491231002X", ID },
        { "110105 19491231 002X", ID },             /* as people write it */
        { "110105-1949-1231-002X", ID },
        { "110101199002290017", NULL },             /* 1990 not leap */
        { "110101200002290012", ID },               /* 2000 leap */
        { "810000199001010019", ID },   /* Hong Kong residents' permit */
        { "830000199001010012", ID },   /* Taiwan residents' permit */
        { "110101900307123", ID },                  /* 15 digits, 1990 */
        { "110101901307123", NULL },                /* month 13 */
        { "110101199013071234", NULL },             /* month 13 */
        { "110101199004311235", NULL },             /* April 31 */
        { "110101189912311234", NULL },             /* before 1900 */
        { "991011199003071234", NULL },             /* no province 99 */
        { "X110101", NULL },                        /* X only ends an ID */
        { "1101011990030712X4", NULL },
        { "11010119900307123", NULL },              /* 17 digits */
        { "1101011990030712345", NULL },            /* 19, part of a run */
    };

    (void) state;
    RUN(cases);
}

static void
test_mobile(void **state)
{
    static const pii_case cases[] = {
        { "13812345678", MOBILE },
        { "19912345678", MOBILE },
        { "req-13812345678", MOBILE },
        { "abc13812345678def", MOBILE },
        { "138-1234-5678", MOBILE },
        { "138 1234 5678", MOBILE },
        { "86-13912345678", MOBILE },               /* issue 19 */
        { "8613912345678", MOBILE },
        { "+86 139 1234 5678", MOBILE },
        { "+86-139-1234-5678", MOBILE },
        { "+8613912345678", MOBILE },
        { "(+86) 13912345678", MOBILE },
        { "0086 13912345678", MOBILE },
        { "0086-139-1234-5678", MOBILE },
        { "008613912345678", MOBILE },
        { "tel:+86.139.1234.5678", MOBILE },
        { "12812345678", NULL },                    /* no 12 prefix */
        { "1381234567", NULL },                     /* 10 digits */
        { "138123456789", NULL },                   /* 12 digits */
        { "8513912345678", NULL },                  /* not 86 */
        { "1-3-8-1-2-3", NULL },
    };

    (void) state;
    RUN(cases);
}

static void
test_landline(void **state)
{
    static const pii_case cases[] = {
        { "010-62345678", PHONE },                  /* Beijing */
        { "01062345678", PHONE },
        { "021 5432 1098", PHONE },                 /* Shanghai */
        { "0591-87654321", PHONE },                 /* Fuzhou, 8 digits */
        { "0591-8765432", PHONE },                  /* 7 digits */
        { "(0591) 8765-4321", PHONE },
        { "+86 591 8765 4321", PHONE },
        { "86-10-62345678", PHONE },
        { "0086 10 6234 5678", PHONE },
        { "+86 (0)591 87654321", PHONE },
        { "0591-17654321", NULL },                  /* numbers start 2-9 */
        { "0591-876543", NULL },                    /* 6 digits */
        { "0591-876543210", NULL },                 /* 9 digits */
        { "00-12345678", NULL },                    /* no area 0 */
        { "059187654321", PHONE },
        { "400-123-4567", NULL },                   /* service number */
        { "62345678", NULL },                       /* no area code */
    };

    (void) state;
    RUN(cases);
}

static void
test_bank_card(void **state)
{
    static const pii_case cases[] = {
        { "4111111111111111", CARD },               /* 16, Luhn */
        { "6222021234567890128", CARD },            /* 19, Luhn */
        { "6222 0212 3456 7890 128", CARD },
        { "6222-0212-3456-7890-128", CARD },
        { "c-6222021234567890123", CARD },  /* 62: UnionPay, check wrong */
        { "6228480012345678903", CARD },
        { "4111111111111112", NULL },               /* not Luhn, not 62 */
        { "622202123456789", NULL },                /* 15 */
        { "41111111111111111111", NULL },           /* 20 */
        { "4222222222222", NULL },                  /* 13 */
        { "911101080000000370", NULL }, /* a USCC that passes Luhn */
    };

    (void) state;
    RUN(cases);
}

static void
test_passports_and_permits(void **state)
{
    static const pii_case cases[] = {
        { "E12345678", PASS },
        { "e12345678", PASS },
        { "EA1234567", PASS },
        { "G12345678", PASS },
        { "DE1234567", PASS },
        { "SE1234567", PASS },
        { "passport:E12345678", PASS },
        { "EI1234567", NULL },                      /* no I series */
        { "E1234567", NULL },                       /* 7 digits */
        { "E123456789", NULL },
        { "XE12345678", NULL },                     /* not a whole word */
        { "C12345678", PERMIT },            /* to Hong Kong and Macao */
        { "CA1234567", PERMIT },
        { "L12345678", PERMIT },                    /* to Taiwan */
        { "H12345678", PERMIT },                    /* Home Return */
        { "M1234567801", PERMIT },                  /* before 2013 */
        { "H1234567", NULL },
        { "Q12345678", NULL },
        { "A123456(3)", HKID },
        { "A1234563", HKID },
        { "XA1234568", HKID },
        { "Z683365(A)", HKID },
        { "A123456(4)", NULL },                     /* check wrong */
        { "A1234564", NULL },
        { "A123456789", TWID },
        { "F131069277", TWID },
        { "A123456788", NULL },                     /* check wrong */
        { "A323456789", NULL },                     /* no sex 3 */
    };

    (void) state;
    RUN(cases);
}

static void
test_email(void **state)
{
    static const pii_case cases[] = {
        { "zhang.san@example.com", EMAIL },
        { "owner: li_si+bank@mail.example.com.cn.", EMAIL },
        { "a@b.cn", EMAIL },
        { "@example.com", NULL },
        { "zhang@localhost", NULL },
        { "zhang@example.c", NULL },
        { "zhang@example.123", NULL },
        { "user@", NULL },
        { "a@.cn", NULL },
    };

    (void) state;
    RUN(cases);
}

/* What is not personal must pass: the enterprise's USCC above all (it is
 * the one identifier the audit keeps), dates, amounts, request ids. */
static void
test_not_personal(void **state)
{
    static const pii_case cases[] = {
        /* USCCs: of enterprises (9...), all digits, passing Luhn, of
         * institutions (1...) */
        { "91350100M000100Y43", NULL },
        { "914403001922038216", NULL },
        { "911101080000000370", NULL },
        { "91110108000000001A", NULL },
        { "121000004000000010", NULL },
        { "uscc=91350100M000100Y43;bank=BANK001", NULL },
        { "91350100M000100Y43-loan-2026.11", NULL },
        /* dates and times */
        { "2026-11-27", NULL },
        { "20261127", NULL },
        { "2026-11-27T10:30:00+08:00", NULL },
        { "2026/11/27 10:30:00", NULL },
        { "1764201234567", NULL },                  /* Unix ms */
        { "1764201234", NULL },                     /* Unix s */
        /* amounts */
        { "1234567.89", NULL },
        { "12,345,678.90", NULL },
        { "100000-200000", NULL },
        { "-5000000", NULL },
        /* request ids and consent ids */
        { "5f1c0a9e-7b3d-4c2e-9a8f-0d1e2f3a4b5c", NULL },
        { "52a2c543032441488a983287c045d404", NULL },
        { "rl-cfc963c6bf334f81b5ebc268721952c3", NULL },
        { "req-2026-11-27-000123", NULL },
        { "consent-2026.11_ok", NULL },
        { "c-1", NULL },
        { "BANK001", NULL },
        { "trace-1", NULL },
        { "", NULL },
    };

    (void) state;
    RUN(cases);
}

/* contract §2.1: a jti the audit cannot hold as it is becomes its digest. */
static void
test_consent_id(void **state)
{
    char        out[CA_CONSENT_ID_MAX + 1];
    const char *id = "11010519491231002X";
    const char *hex = "sha256:";

    (void) state;
    assert_int_equal(ca_audit_consent_id("c-2026.11:7", 11, out), 11);
    assert_string_equal(out, "c-2026.11:7");
    /* a resident ID, a mobile (with country code): hashed, never written */
    assert_int_equal(ca_audit_consent_id(id, strlen(id), out), 71);
    assert_memory_equal(out, hex, 7);
    assert_null(strstr(out, "1101051949"));
    ca_audit_consent_id("13812345678", 11, out);
    assert_memory_equal(out, hex, 7);
    ca_audit_consent_id("86-13912345678", 14, out);
    assert_memory_equal(out, hex, 7);
    /* the USCC is not personal */
    assert_int_equal(ca_audit_consent_id("91350100M000100Y43", 18, out), 18);
    /* outside [A-Za-z0-9._:-]{1,128} */
    ca_audit_consent_id("a b", 3, out);
    assert_memory_equal(out, hex, 7);
    ca_audit_consent_id("x\"y", 3, out);
    assert_memory_equal(out, hex, 7);
    {
        char long_id[130];
        memset(long_id, 'a', sizeof(long_id));
        assert_int_equal(ca_audit_consent_id(long_id, 128, out), 128);
        assert_int_equal(ca_audit_consent_id(long_id, 129, out), 71);
    }
    /* the same jti always gives the same digest (queries find it) */
    {
        char again[CA_CONSENT_ID_MAX + 1];
        ca_audit_consent_id(id, strlen(id), again);
        ca_audit_consent_id(id, strlen(id), out);
        assert_string_equal(out, again);
    }
}

/* Not NUL-terminated, and long: the detector reads exactly len bytes. */
static void
test_bounds(void **state)
{
    char  buf[4096];

    (void) state;
    memcpy(buf, "13812345678", 11);
    assert_false(ca_looks_personal(buf, 10));
    assert_true(ca_looks_personal(buf, 11));
    memset(buf, '5', sizeof(buf));
    assert_false(ca_looks_personal(buf, sizeof(buf)));
    /* every run of groups is tried, each up to 24 digits */
    for (size_t i = 0; i + 1 < sizeof(buf); i += 2) {
        buf[i] = '5';
        buf[i + 1] = '-';
    }
    assert_false(ca_looks_personal(buf, sizeof(buf)));
    memset(buf, '@', sizeof(buf));
    assert_false(ca_looks_personal(buf, sizeof(buf)));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resident_id),
        cmocka_unit_test(test_mobile),
        cmocka_unit_test(test_landline),
        cmocka_unit_test(test_bank_card),
        cmocka_unit_test(test_passports_and_permits),
        cmocka_unit_test(test_email),
        cmocka_unit_test(test_not_personal),
        cmocka_unit_test(test_consent_id),
        cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests_name("pii", tests, NULL, NULL);
}
