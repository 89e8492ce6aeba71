"""Test stack for the credit-auth gateway: PKI, keys, tokens, Redis, a demo
platform (upstream), a plain proxy and the gateway itself, each a real
process on a free loopback port under its own working directory.

One module per concern (proc, tokens, pki, records, redis_server,
nginx, platform, wiring); `import stack as S` gives every name, as
before.  Used by scripts/demo.py, tests/integration/ and bench/bench.py.  Standard
library plus Debian's python3-cryptography, python3-jwt, python3-redis.

Environment:
  CREDIT_AUTH_ROOT    repository root (default: two levels above this package)
  CREDIT_AUTH_MODULE  the module .so (default: <root>/build/ngx_http_credit_auth_module.so)
  CREDIT_AUTH_NGINX   the nginx binary (default: /usr/sbin/nginx)
  CREDIT_AUTH_ASAN=1  preload libasan into nginx (the module is ASan-built)
"""

from .proc import (  # noqa: F401
    NGINX,
    REDIS_SERVER,
    ROOT,
    _children,
    _given_ports,
    asan_enabled,
    asan_env,
    asan_reports,
    b64url,
    free_port,
    module_path,
    port_open,
    subdir,
    tail,
    wait_for,
    workdir,
    write_json)
from .tokens import (  # noqa: F401
    ALGS,
    DEMO_USCC,
    USCC_ALPHABET,
    _int_b64,
    bad_uscc,
    bank_entry,
    claims,
    compact,
    consent_id,
    generate_key,
    hs256_forge,
    make_audit_key,
    make_enterprise_key,
    make_hash_key,
    make_uscc,
    mint_token,
    public_jwk,
    public_pem,
    sign_compact,
    uscc_check_char,
    uscc_valid,
    write_banks,
    write_jwks)
from .pki import (  # noqa: F401
    BankCert,
    CA,
    PKI,
    _name,
    _write_cert,
    _write_key,
    cert_der,
    cert_sha256,
    client_cert_header,
    x5t_s256)
from .records import (  # noqa: F401
    TEST_POLICY,
    environment_record,
    record_of_size,
    tax_record,
    write_platform)
from .redis_server import (  # noqa: F401
    Redis,
    Sentinel)
from .nginx import (  # noqa: F401
    Gateway,
    Nginx,
    PlainProxy,
    Upstream,
    _directives,
    _tls_directives,
    nginx_t,
    withdrawal_server)
from .platform import (  # noqa: F401
    RawPlatform,
    ThreadedServer,
    close_listener,
    http_answer,
    tls_exchange)
from .wiring import (  # noqa: F401
    Stack)
from .postgres import (  # noqa: F401
    PG_BIN,
    Postgres)
from .auditgen import (  # noqa: F401
    AuditWriter,
    entry_hash)
