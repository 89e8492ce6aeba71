"""The test policy and the platform's records (fixtures shared by tests, demo and bench)."""

import json
import os
from pathlib import Path


TEST_POLICY = {
    "version": "test-2026-11-27.1",
    "purposes": ["loan_application", "credit_assessment",
                 "post_loan_monitoring"],
    "token": {"algs": ["ES256", "RS256", "PS256", "EdDSA", "SM2"],
              "max_lifetime": 7776000, "leeway": 60, "require_cnf": False},
    "categories": {
        "tax": {
            "routes": ["/api/v1/enterprises/{uscc}/tax"],
            "purposes": ["loan_application", "credit_assessment",
                         "post_loan_monitoring"],
            "raw_allowed": True,
            "fields": {
                "uscc": "keep",
                "name": "keep",
                "credit_rating": "keep",
                "annual[].year": "keep",
                "annual[].tax_paid": {"masked": "bucket:100000",
                                      "raw": "keep",
                                      "class": "trade_secret"},
                "legal_representative.name": {"masked": "mask:1,0",
                                              "raw": "keep",
                                              "class": "personal"},
                "legal_representative.id_number": {"masked": "mask:6,4",
                                                   "raw": "mask:6,4",
                                                   "class": "personal"},
            },
            "verify": {"annual[].tax_paid": ["ge", "le", "eq"],
                       "credit_rating": ["eq"]},
        },
        "environment": {
            "routes": ["/api/v1/enterprises/{uscc}/environment"],
            "purposes": ["loan_application", "credit_assessment"],
            "raw_allowed": False,
            "fields": {
                "uscc": "keep",
                "env_rating": "keep",
                "penalties[].date": "year",
                "penalties[].amount": "bucket:10000",
            },
            "verify": {"env_rating": ["eq", "ne"]},
        },
    },
}


def tax_record(uscc, name="福州闽江精密机械有限公司", pad=0):
    """An upstream tax record with fields the policy withholds."""
    rec = {
        "uscc": uscc,
        "name": name,
        "credit_rating": "A",
        "annual": [
            {"year": 2023, "tax_paid": 1234567.89,
             "filing_ref": "FR-2023-SECRET-88812"},
            {"year": 2022, "tax_paid": 987654,
             "filing_ref": "FR-2022-SECRET-77311"},
        ],
        "legal_representative": {"name": "张三丰",
                                 "id_number": "110101199003071234",
                                 "mobile": "13812345678"},
        "internal_notes": "UPSTREAM-INTERNAL-NOTE do not disclose",
    }
    if pad:
        years = [{"year": 2021 - i, "tax_paid": 500000 + 1000 * i,
                  "filing_ref": f"FR-{2021 - i}-{i:05d}"} for i in range(pad)]
        rec["annual"].extend(years)
    return rec


def environment_record(uscc):
    return {"uscc": uscc, "env_rating": "B",
            "penalties": [{"date": "2022-05-17", "amount": 35000,
                           "case_no": "ENV-SECRET-2022-017"}],
            "internal_notes": "UPSTREAM-INTERNAL-NOTE env"}


def record_of_size(uscc, kb):
    """A tax record whose JSON is about kb KiB."""
    pad = 0
    while True:
        rec = tax_record(uscc, pad=pad)
        if len(json.dumps(rec, ensure_ascii=False).encode()) >= kb * 1024:
            return rec
        pad += 1


def write_platform(root, records):
    """records: {(uscc, category): obj or bytes or str} -> files under
    root/api/v1/enterprises/<uscc>/<category>."""
    root = Path(root)
    for (uscc, cat), body in records.items():
        p = root / "api" / "v1" / "enterprises" / uscc / cat
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(body, (dict, list)):
            body = json.dumps(body, ensure_ascii=False, indent=1)
        p.write_bytes(body.encode() if isinstance(body, str) else body)
    for d, dirs, files in os.walk(root):
        os.chmod(d, 0o755)
        for f in files:
            os.chmod(os.path.join(d, f), 0o644)
    return root
