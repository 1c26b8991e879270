"""A user of python etcd3gw (OpenStack's etcd client, which speaks only the JSON gateway) against
one member: put/get/range, transactions, leases, watches and locks. Prints one line per check
and exits non-zero at the first that fails. net/tests/gateway.rs runs it against etcd 3.4 (to
prove the story) and against stead. Usage: etcd3gw_story.py HOST PORT"""

import sys
import time

from etcd3gw.client import Etcd3Client
from etcd3gw import exceptions


def check(condition, what):
    if not condition:
        print(f"FAIL {what}", flush=True)
        sys.exit(1)
    print(f"ok {what}", flush=True)


def main(host, port):
    client = Etcd3Client(host=host, port=port, timeout=10)

    status = client.status()
    check(status["version"].startswith("3.4."), f"status names etcd 3.4 ({status['version']})")
    check(client.api_path == "/v3/", "the client discovers the /v3/ API from /version")
    check(len(client.members()) == 3, "member list has three members")

    # KV: put, get, prefixes, a missing key, delete.
    check(client.put("story/a", "1"), "put story/a")
    check(client.put("story/b", "2"), "put story/b")
    check(client.get("story/a") == [b"1"], "get story/a")
    check(client.get("story/none") == [], "a missing key reads as nothing")
    values = client.get_prefix("story/")
    check([value for value, _ in values] == [b"1", b"2"], "get_prefix reads both keys in order")
    meta = values[0][1]
    check(meta["key"] == b"story/a" and int(meta["version"]) == 1, "metadata of story/a")
    check(int(meta["mod_revision"]) > 0, "mod_revision is a number")
    everything = client.get_all()
    check(any(meta["key"] == b"story/b" for _, meta in everything), "get_all sees story/b")

    # Transactions.
    check(client.create("story/new", "x"), "create a new key")
    check(not client.create("story/new", "y"), "create refuses an existing key")
    check(client.replace("story/a", "1", "10"), "replace when the value matches")
    check(not client.replace("story/a", "1", "11"), "replace refuses a stale value")
    check(client.get("story/a") == [b"10"], "the replaced value reads back")
    txn = client.transaction({
        "compare": [{"key": "c3RvcnkvYg==", "result": "EQUAL", "target": "VALUE", "value": "Mg=="}],
        "success": [{"request_range": {"key": "c3RvcnkvYg=="}}],
        "failure": [],
    })
    ranged = txn["responses"][0]["response_range"]["kvs"][0]
    check(txn["succeeded"] and ranged["value"] == "Mg==", "a txn reads inside its success branch")

    # Leases.
    lease = client.lease(ttl=30)
    check(lease.id > 0, "lease granted")
    ttl = lease.ttl()
    check(0 < ttl <= 30, f"lease TTL {ttl}")
    check(client.put("story/leased", "v", lease=lease), "put with the lease")
    check(lease.keys() == [b"story/leased"], "the lease lists its key")
    refreshed = lease.refresh()
    check(0 < refreshed <= 30, f"keep-alive renews the lease ({refreshed})")
    check(lease.revoke(), "lease revoked")
    check(client.get("story/leased") == [], "revoking the lease deleted its key")
    try:
        lease.revoke()
        check(False, "revoking a revoked lease fails")
    except exceptions.Etcd3Exception as error:
        check("requested lease not found" in (error.detail_text or ""), "revoking a revoked lease fails")

    # Watches: a live event, a prefix from a past revision, one event with a timeout.
    events, cancel = client.watch("story/w")
    time.sleep(0.3)
    client.put("story/w", "x")
    event = next(events)
    check(event["kv"]["key"] == b"story/w" and event["kv"]["value"] == b"x", "watch sees a put")
    client.delete("story/w")
    event = next(events)
    check(event.get("type") == "DELETE", "watch sees the delete")
    cancel()
    first = int(values[0][1]["mod_revision"])
    events, cancel = client.watch_prefix("story/", start_revision=first)
    event = next(events)
    check(event["kv"]["key"] == b"story/a" and event["kv"]["value"] == b"1",
          "a prefix watch from the past starts at that revision")
    cancel()
    try:
        client.watch_once("story/quiet", timeout=1)
        check(False, "watch_once times out on a quiet key")
    except exceptions.WatchTimedOut:
        check(True, "watch_once times out on a quiet key")

    # Locks (etcd3gw's own, built on txn and leases).
    lock = client.lock("story-lock", ttl=30)
    check(lock.acquire(), "lock acquired")
    check(lock.is_acquired(), "lock is held")
    other = client.lock("story-lock", ttl=30)
    check(not other.acquire(), "a second holder is refused")
    check(lock.refresh() > 0, "lock lease refreshed")
    check(lock.release(), "lock released")
    check(other.acquire(), "the second holder gets it after release")
    check(other.release(), "second holder releases")

    check(client.delete("story/a"), "delete story/a")
    check(not client.delete("story/a"), "deleting it again deletes nothing")
    check(client.delete_prefix("story/"), "delete the prefix")
    check(client.get_prefix("story/") == [], "the prefix is empty")
    print("story complete", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
