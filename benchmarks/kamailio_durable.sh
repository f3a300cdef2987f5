#!/usr/bin/env bash
# The bench's Kamailio anchor with the durability sipactors has: every registration written to an SQLite file
# before the 200 goes out (usrloc db_mode=1, write-through), in WAL mode with SQLite's default synchronous=FULL,
# as sipactors' store is. The anchor (../shared/bench/kamailio) keeps usrloc in memory only (db_mode=0): a
# restart loses every binding, which issue 4 does not allow sipactors.
#
#   benchmarks/kamailio_durable.sh          # foreground; 127.0.0.1:5071 (udp+tcp), pinned to core 1
# env: KAM_PORT (5071)  KAM_CPU (1)  BENCH (../shared/bench beside the repo)
#
# The config is the anchor's own kamailio.cfg, changed on the fly in two places (nothing else differs): the
# db_sqlite module is loaded, and usrloc writes through to the file. One worker: with Kamailio's four, SQLite's
# single writer makes most REGISTERs fail with "database is locked" (db_sqlite waits for no lock).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BENCH=${BENCH:-$HERE/../../shared/bench}
PORT=${KAM_PORT:-5071}
CPU=${KAM_CPU:-1}
TMP=$(mktemp -d -t kamdurable.XXXXXX)
KPID=""
cleanup() {
  if [ -n "$KPID" ]; then kill -TERM "$KPID" 2>/dev/null || true; fi
  wait 2>/dev/null || true; rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

python3 - "$BENCH/kamailio/kamailio.cfg" "$TMP" <<'PY'
import sqlite3, sys
source, tmp = sys.argv[1], sys.argv[2]
cfg = open(source).read()
edits = [
    ('loadmodule "usrloc.so"', 'loadmodule "db_sqlite.so"\nloadmodule "usrloc.so"'),
    ('modparam("usrloc", "db_mode", 0)',
     f'modparam("usrloc", "db_mode", 1)\nmodparam("usrloc", "db_url", "sqlite://{tmp}/location.sqlite")'),
    ('#!ifdef WITH_AUTH\nloadmodule "db_sqlite.so"', '#!ifdef WITH_AUTH'),  # loaded above already
]
for old, new in edits:
    if old not in cfg:
        sys.exit(f"kamailio.cfg changed: {old!r} not found")
    cfg = cfg.replace(old, new)
open(f"{tmp}/kamailio.cfg", "w").write(cfg)
# Kamailio's own SQLite schema for usrloc; WAL, as sipactors' store (journal_mode persists in the file)
db = sqlite3.connect(f"{tmp}/location.sqlite")
db.execute("PRAGMA journal_mode=WAL")
db.executescript(
    "CREATE TABLE version (table_name VARCHAR(32) NOT NULL, table_version INTEGER DEFAULT 0 NOT NULL,"
    " CONSTRAINT version_table_name_idx UNIQUE (table_name));"
    + open("/usr/share/kamailio/db_sqlite/usrloc-create.sql").read()
)
db.commit()
PY

taskset -c "$CPU" kamailio -f "$TMP/kamailio.cfg" -DD -E -Y "$TMP" -m 512 -M 16 -A "KPORT=$PORT" -A NCHILD=1 &
KPID=$!
wait "$KPID"
