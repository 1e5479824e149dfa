#!/usr/bin/env python3
"""Writes the seed corpus fuzz/corpus/<target>/ (run from anywhere; idempotent).

Names: ok-* must be accepted, bad-* refused (tests/corpus.rs checks both);
other names (crash-*, x-*) only must not break an invariant. Files that
cargo-fuzz or proptest found are added by hand as crash-<what>.
"""
import json, os, pathlib

ROOT = pathlib.Path(__file__).resolve().parent / "corpus"
REPO = ROOT.parent.parent
CELL = "0e5c6b1a-3f7d-4c1e-9a2b-5d6e7f8a9b0c"

def put(target, name, data):
    d = ROOT / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / name).write_bytes(data)

def common_bad(target, valid, deep=b"[" * 5000, nul=True):
    """The hostile variants every parser must refuse."""
    put(target, "x-truncated", valid[: len(valid) // 2])
    put(target, "bad-truncated", valid[: len(valid) // 2] + b"\n[")
    put(target, "bad-non-utf8", valid[:10] + b"\xff\xfe\xc3\x28" + valid[10:])
    put(target, "bad-deep-nesting", deep)
    if nul:
        put(target, "bad-nul", valid[:5] + b"\0" + valid[5:])

# --- heartbeat (agent heartbeat JSON and legacy forms)
hb = {"timestamp": 1763856000.25, "pid": 4242, "cycle": 17, "model": "timmy:v0.1-q4",
      "status": "thinking", "seq": 9, "boot_id": "b0a1", "interval_seconds": 30}
v = json.dumps(hb).encode()
put("heartbeat", "ok-agent.json", v)
put("heartbeat", "ok-bare-epoch", b"1763856000.5\n")
put("heartbeat", "ok-iso", b"2026-11-23T02:00:00Z")
put("heartbeat", "ok-iso-quoted", b'"2026-11-23 02:00:00+01:00"')
put("heartbeat", "ok-empty-touch", b"")
put("heartbeat", "ok-iso-timestamp-field", b'{"timestamp": "2026-11-23T02:00:00Z", "interval": "5m"}')
common_bad("heartbeat", v)
put("heartbeat", "bad-array", b"[1763856000]")
put("heartbeat", "bad-timestamp-wrong-type", b'{"timestamp": [1]}')
put("heartbeat", "bad-timestamp-huge", b'{"timestamp": 1e400}')
put("heartbeat", "bad-epoch-inf", b"inf")
put("heartbeat", "bad-interval-negative", b'{"timestamp": 1, "interval_seconds": -30}')
put("heartbeat", "bad-interval-zero", b'{"timestamp": 1, "interval_seconds": 0}')
put("heartbeat", "x-huge-int-field", b'{"timestamp": 1, "seq": 999999999999999999999999999999}')
put("heartbeat", "x-long-string", json.dumps({"timestamp": 1, "status": "x" * 100000}).encode())

# --- cron .last records (the checker scans and judges them)
last = {"job": "nightly_backup", "status": "ok", "timestamp": 1763856000, "started_at": 1763855990,
        "finished_at": 1763856000, "exit_code": 0, "interval_seconds": 86400, "host": "bezalel"}
v = json.dumps(last).encode()
put("cron_last", "ok-success.last", v)
put("cron_last", "ok-failed.last", json.dumps(dict(last, status="failed", exit_code=17)).encode())
put("cron_last", "ok-running.last", json.dumps(dict(last, status="running", exit_code=None)).encode())
put("cron_last", "ok-touch", b"")
common_bad("cron_last", v)
put("cron_last", "bad-interval-string", b'{"timestamp": 1, "interval_seconds": "soon"}')
put("cron_last", "x-status-wrong-type", json.dumps(dict(last, status=7, exit_code="x")).encode())
put("cron_last", "x-exit-code-huge", json.dumps(dict(last, exit_code=2**70)).encode())
put("cron_last", "x-future", json.dumps(dict(last, timestamp=9e15)).encode())

# --- cell.json
cell = {"uuid": CELL, "name": "lazarus", "mission": "Revive the fleet.",
        "created_at": "2026-11-23T01:00:00Z", "created_by": "alexander", "status": "active",
        "agents": [{"name": "allegro", "role": "developer", "joined_at": "2026-11-23T01:05:00Z",
                    "revive_cmd": ["python3", "-m", "agent"], "revive_policy": "ask", "mood": "ok"}],
        "gitea_issue": 42, "repo": "Timmy_Foundation/the-nexus", "config": {"max_revive_attempts": 3},
        "future_field": {"kept": [1, 2.5, None]}}
v = json.dumps(cell, indent=2).encode()
put("cell_json", "ok-active.json", v)
put("cell_json", "ok-minimal.json", json.dumps({k: cell[k] for k in
    ["uuid", "mission", "created_at", "created_by", "status"]}).encode())
common_bad("cell_json", v)
put("cell_json", "bad-empty", b"")
put("cell_json", "bad-uuid-mismatch", json.dumps(dict(cell, uuid="11111111-2222-4333-8444-555555555555")).encode())
put("cell_json", "bad-agent-traversal", json.dumps(dict(cell, agents=[dict(cell["agents"][0], name="../../etc")])).encode())
put("cell_json", "bad-agent-nul", json.dumps(dict(cell, agents=[dict(cell["agents"][0], name="a\u0000b")])).encode())
put("cell_json", "bad-status-wrong-type", json.dumps(dict(cell, status=3)).encode())
put("cell_json", "bad-joined-at", json.dumps(dict(cell, agents=[dict(cell["agents"][0], joined_at="yesterday")])).encode())
put("cell_json", "bad-issue-huge", json.dumps(dict(cell, gitea_issue=2**70)).encode())
put("cell_json", "bad-revive-cmd-shell-string", json.dumps(dict(cell, agents=[dict(cell["agents"][0], revive_cmd="python3 -m agent; rm -rf /")])).encode())
put("cell_json", "bad-revive-cmd-empty", json.dumps(dict(cell, agents=[dict(cell["agents"][0], revive_cmd=[])])).encode())

# --- events.jsonl
lines = [
    {"ts": "2026-11-23T01:00:00Z", "event": "cell_created", "by": "alexander", "uuid": CELL},
    {"ts": "2026-11-23T01:05:00Z", "event": "agent_joined", "agent": "allegro", "role": "developer"},
    {"ts": "2026-11-23T01:06:00.123456Z", "event": "custom_thing", "note": "kept", "n": 1.5},
]
v = "".join(json.dumps(l) + "\n" for l in lines).encode()
put("events_jsonl", "ok-log.jsonl", v)
put("events_jsonl", "ok-empty", b"")
put("events_jsonl", "ok-blank-lines", b"\n\n" + v + b"\n   \n")
put("events_jsonl", "bad-torn-last-line", v + b'{"ts": "2026-11-23T01:07:00Z", "ev')
put("events_jsonl", "bad-non-utf8", v + b'{"ts": "2026-11-23T01:07:00Z", "event": "x\xff"}\n')
put("events_jsonl", "bad-nul", v + b"\0\0\0\n")
put("events_jsonl", "bad-missing-ts", v + b'{"event": "cell_created"}\n')
put("events_jsonl", "bad-known-event-wrong-field", v + b'{"ts": "2026-11-23T01:07:00Z", "event": "agent_joined", "agent": 5}\n')
put("events_jsonl", "bad-deep-nesting", b'{"ts": "2026-11-23T01:07:00Z", "event": "x", "a": ' + b"[" * 5000 + b"\n")

# --- TOML configs: the documented examples, then hostile variants
def toml_target(target, valid, wrong_type, unknown_key):
    put(target, "ok-example.toml", valid)
    common_bad(target, valid, deep=b"a = " + b"[" * 5000)
    put(target, "bad-wrong-type", wrong_type)
    put(target, "bad-unknown-key", unknown_key)
    put(target, "bad-huge-number", b"[x]\nn = 99999999999999999999999999\n")

toml_target("watchdog_toml", (REPO / "docs/examples/watchdog.toml").read_bytes(),
            b'[watchdog]\ninterval = true\n', b'[watchdog]\nintervall = "60s"\n')
put("watchdog_toml", "ok-minimal.toml", b"")
put("watchdog_toml", "bad-zero-interval", b'[watchdog]\ninterval = "0s"\n')
put("watchdog_toml", "bad-heartbeat-job-traversal", b'[watchdog]\nheartbeat_job = "../../etc/cron"\n')
toml_target("probe_toml", (REPO / "crates/nexus-probe/probes.example.toml").read_bytes(),
            b'[[probe]]\nname = 5\ntcp = { host = "localhost", port = 1 }\n',
            b'[[probe]]\nname = "x"\ntcpp = { host = "localhost", port = 1 }\n')
put("probe_toml", "x-port-huge-is-a-verdict", b'[[probe]]\nname = "x"\ntcp = { host = "localhost", port = 70000 }\n')
put("probe_toml", "bad-duplicate-name", b'[[probe]]\nname = "x"\ntcp = { host = "a", port = 1 }\n[[probe]]\nname = "x"\ntcp = { host = "b", port = 2 }\n')
toml_target("pool_toml", (REPO / "docs/examples/resurrection-pool.toml").read_bytes(),
            b'[pool]\npoll_interval = [1]\n', b'[pool]\npoll = "60s"\n')
put("pool_toml", "bad-revive-cmd-shell-string", b'[[gateway]]\nname = "x"\nport = 1\nrevive_cmd = "python3 -m x; rm -rf /"\n')
put("pool_toml", "bad-gateway-name-traversal", b'[[gateway]]\nname = "../x"\nport = 1\n')
put("pool_toml", "bad-ping-max-body-negative", b'[ping]\ndir = "/tmp/x"\nmax_body = -1\n')
put("pool_toml", "ok-lazarus-pit-sample", (REPO / "docs/examples/lazarus-pit.toml").read_bytes())
put("pool_toml", "bad-lazarus-poll-interval-zero", b'[cells]\npoll_interval = 0\n')
put("pool_toml", "bad-lazarus-mixed-with-pool", b'[daemon]\npid_file = "/tmp/p"\n[pool]\n')
reg = b'''[defaults]
multiplier = 3
grace = "10m"
timezone = "Europe/Berlin"

[jobs.db_backup]
interval = "1d"

[jobs.runner_health]
interval_seconds = 900

[jobs.nightly_watch]
schedule = "0 3 * * *"
max_run_time = "2h"
'''
toml_target("cron_registry", reg, b'[jobs.db_backup]\ninterval = []\n', b'[jobs.db_backup]\nintervall = "1d"\n')
put("cron_registry", "bad-schedule", b'[jobs.x]\nschedule = "61 * * * *"\n')
put("cron_registry", "bad-timezone", b'[jobs.x]\nschedule = "0 3 * * *"\ntimezone = "Mars/Olympus"\n')
put("cron_registry", "bad-job-name-traversal", b'[jobs."../../etc/passwd"]\ninterval = "1d"\n')
put("cron_registry", "bad-multiplier-nan", b'[defaults]\nmultiplier = nan\n')

# --- the seed's resurrection_pool.json
seed = {"poll_interval": 30, "dead_threshold": 120, "approval_timeout": 60,
        "gateways": [{"name": "timmy", "port": 8765, "revive_cmd": ["python3", "-m", "nexus.nexus_think"]},
                     {"name": "allegro", "host": "10.0.0.5"}],
        "missions": {"m1": {"label": "Operation Lazarus", "agents": ["timmy"], "revive_policy": "auto"}},
        "telegram": {"bot_token": "123:abc", "chat_id": "-1001"},
        "gitea": {"url": "http://127.0.0.1:3000", "token": "t0k", "repo": "o/r"}}
v = json.dumps(seed).encode()
put("pool_seed_json", "ok-seed.json", v)
common_bad("pool_seed_json", v)
put("pool_seed_json", "bad-poll-wrong-type", json.dumps(dict(seed, poll_interval="often")).encode())
put("pool_seed_json", "bad-gateways-object", json.dumps(dict(seed, gateways={"a": 1})).encode())
put("pool_seed_json", "bad-port-huge", json.dumps(dict(seed, gateways=[{"name": "t", "port": 2**40}])).encode())

# --- Telegram getUpdates results
upd = [{"update_id": 10, "message": {"message_id": 5, "date": 1763856000,
        "chat": {"id": -1001234567890, "type": "supergroup"},
        "from": {"id": 7, "is_bot": False, "first_name": "Alexander"}, "text": "/status"}},
       {"update_id": 11, "callback_query": {"id": "cb1", "from": {"id": 7, "is_bot": False, "first_name": "A"},
        "data": "approve:timmy:1", "message": {"message_id": 6, "date": 1763856001,
        "chat": {"id": -1001234567890, "type": "supergroup"}}}}]
v = json.dumps(upd).encode()
put("telegram_updates", "ok-updates.json", v)
put("telegram_updates", "ok-empty.json", b"[]")
common_bad("telegram_updates", v)
put("telegram_updates", "bad-update-id-string", json.dumps([{"update_id": "10"}]).encode())
put("telegram_updates", "bad-update-id-huge", json.dumps([{"update_id": 2**70}]).encode())

# --- Gitea replies
issue = {"id": 1001, "number": 42, "title": "[pool] timmy is dead", "body": "marker", "state": "open",
         "labels": [{"id": 3, "name": "resurrection-pool", "color": "ee0701"}],
         "html_url": "http://127.0.0.1:3000/o/r/issues/42", "created_at": "2026-11-23T01:00:00Z",
         "closed_at": None, "user": {"id": 1, "login": "bot"}}
v = json.dumps([issue]).encode()
put("gitea_response", "ok-issues.json", v)
put("gitea_response", "ok-issue-null-body.json", json.dumps(dict(issue, body=None, labels=None)).encode())
put("gitea_response", "x-comments.json", json.dumps([{"id": 5, "body": "still dead", "created_at": "2026-11-23T01:00:00Z"}]).encode())
common_bad("gitea_response", v)
put("gitea_response", "bad-state-unknown", json.dumps([dict(issue, state="merged")]).encode())
put("gitea_response", "bad-number-negative", json.dumps([dict(issue, number=-1)]).encode())
put("gitea_response", "bad-html-error-page", b"<html><body>502 Bad Gateway</body></html>")

# --- /ping requests: [method byte][token byte]<target>\n<body>
def ping(name, method, token, target, body=b""):
    put("ping_request", name, bytes([method, token]) + target + b"\n" + body)
ping("ok-success", 0, 1, b"/ping/db_backup?interval=1h")
ping("ok-start", 0, 1, b"/ping/db_backup/start")
ping("ok-exit-code", 0, 3, b"/ping/db_backup/17")
ping("bad-no-token", 0, 0, b"/ping/db_backup")
ping("bad-wrong-token", 0, 2, b"/ping/db_backup")
ping("bad-get", 1, 1, b"/ping/db_backup")
ping("bad-traversal", 0, 1, b"/ping/..%2F..%2Fetc%2Fcron.d")
ping("bad-dotdot", 0, 1, b"/ping/../x")
ping("bad-nul", 0, 1, b"/ping/a%00b")
ping("bad-non-utf8", 0, 1, b"/ping/a%ff%fe")
ping("bad-long-name", 0, 1, b"/ping/" + b"a" * 5000)
ping("bad-exit-code-huge", 0, 1, b"/ping/j/99999999999999999999")
ping("bad-interval-zero", 0, 1, b"/ping/j?interval=0s")
ping("bad-oversized-body", 0, 1, b"/ping/j", b"x" * 4096)
ping("x-unknown-path", 0, 1, b"/pingx/j")
# Found by cargo-fuzz: the 400 reply quotes the bad job name, which here
# holds the token the sender put there (not a leak).
ping("crash-token-in-job-name", 0, 1, b"/ping/..%2F.fuzz-ping-token-0123456789Fcron.d")

# --- names (job, agent, cell id, checkpoint)
put("names", "ok-job", b"nightly_backup")
put("names", "ok-cell-id", CELL.encode())
put("names", "bad-dotdot", b"..")
put("names", "bad-traversal", b"../../etc/passwd")
put("names", "bad-slash", b"a/b")
put("names", "bad-nul", b"a\0b")
put("names", "bad-empty", b"")
put("names", "bad-long", b"a" * 300)
put("names", "bad-non-utf8", b"a\xff\xfe")
put("names", "bad-newline", b"job\nname")
put("names", "bad-rtl-override", "a\u202eb".encode())
