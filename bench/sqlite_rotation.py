#!/usr/bin/env python3
"""What SQLite itself costs for one refresh-token rotation, without the server around it.

Runs the statements the server issues per `grant_type=refresh_token` request (src/store/refresh.rs
`rotate`, then the user lookup in src/oauth/grants/refresh_token.rs) from Python's sqlite3, on one
connection, on a COPY of a Custos database that already holds a refresh family (e.g. the one a
`KEEP_TMP=1 SCENARIOS=refresh bench/run.sh` run leaves in its scratch directory):

    python3 bench/sqlite_rotation.py /tmp/custos-bench.XXXX/data/custos.db [N] [BATCH]
    SYNC=FULL python3 bench/sqlite_rotation.py ... # fsync at every commit

BATCH > 1 puts that many rotations in one transaction (group commit). Python's own overhead is included,
so the figures are an upper bound of SQLite's share.
"""
import base64
import hashlib
import os
import shutil
import sqlite3
import sys
import tempfile
import time

src = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
batch = int(sys.argv[3]) if len(sys.argv) > 3 else 1
sync = os.environ.get("SYNC", "NORMAL")

tmp = tempfile.mkdtemp(prefix="custos-sqlite-rotation.")
db = os.path.join(tmp, "custos.db")
try:
    # A consistent copy, WAL included.
    with sqlite3.connect(f"file:{src}?mode=ro", uri=True) as s, sqlite3.connect(db) as d:
        s.backup(d)
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute(f"PRAGMA synchronous={sync}")
    c.execute("PRAGMA foreign_keys=ON")

    def h(t):
        return base64.urlsafe_b64encode(hashlib.sha256(t.encode()).digest()).decode().rstrip("=")

    def new_token():
        return "cst_rt_" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")

    fam = c.execute("SELECT id, user_id FROM refresh_families LIMIT 1").fetchone()
    if fam is None:
        sys.exit("the database holds no refresh family; run the refresh scenario with KEEP_TMP=1 first")
    now = int(time.time())
    cur = new_token()
    c.execute("INSERT INTO refresh_tokens VALUES (?,?,NULL,?,?,?,NULL,NULL)",
              (h(cur), fam[0], '["openid","offline_access"]', now, now + 604800))
    t0 = time.perf_counter()
    for i in range(n):
        th = h(cur)
        tok = c.execute('SELECT "token_hash", "family_id", "parent_hash", "scope", "created_at", '
                        '"expires_at", "used_at", "successor_sealed" FROM "refresh_tokens" '
                        'WHERE "refresh_tokens"."token_hash" = ? LIMIT 1', (th,)).fetchone()
        f = c.execute('SELECT * FROM "refresh_families" WHERE "refresh_families"."id" = ? LIMIT 1',
                      (tok[1],)).fetchone()
        nxt = new_token()
        if i % batch == 0:
            c.execute("BEGIN IMMEDIATE")
        r = c.execute('UPDATE "refresh_tokens" SET "used_at" = ?, "successor_sealed" = ? '
                      'WHERE "refresh_tokens"."token_hash" = ? AND "refresh_tokens"."used_at" IS NULL',
                      (now, None, th))
        assert r.rowcount == 1
        c.execute('INSERT INTO "refresh_tokens" ("token_hash", "family_id", "parent_hash", "scope", '
                  '"created_at", "expires_at", "used_at", "successor_sealed") VALUES (?,?,?,?,?,?,?,?)',
                  (h(nxt), tok[1], th, tok[3], now, now + 604800, None, None))
        if tok[2]:
            c.execute('UPDATE "refresh_tokens" SET "successor_sealed" = NULL WHERE '
                      '"refresh_tokens"."token_hash" = ? AND "refresh_tokens"."successor_sealed" IS NOT NULL',
                      (tok[2],))
        if i % batch == batch - 1 or i == n - 1:
            c.execute("COMMIT")
        c.execute('SELECT * FROM "users" WHERE "users"."id" = ? LIMIT 1', (f[1],)).fetchone()
        cur = nxt
    dt = time.perf_counter() - t0
    print(f"synchronous={sync} rotations/transaction={batch}: {n} rotations in {dt:.2f} s = "
          f"{n / dt:.0f}/s, {dt / n * 1e6:.0f} us each (Python overhead included)")
finally:
    shutil.rmtree(tmp, ignore_errors=True)
