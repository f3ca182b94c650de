#!/usr/bin/python3
"""Cache-hit latency of Python's requests-cache over SQLite, unsigned and signed, as JSON.

Run by bench/peers.ts in the same `npm run bench` as the axios section; it can also be run by
hand against any origin that answers `/<bytes>` with a cacheable body of that many bytes:

    /usr/bin/python3 bench/requests_cache_hits.py --origin http://127.0.0.1:PORT \
        --sizes 1024,65536,1048576 --plan '{"rounds": 31, "warmup": 3, "batchMs": 40, ...}'

The origin is the bench's own Node server (bench/axios.ts `startServer`), not one served from
here: requests-cache then caches the very bytes and headers the axios section caches (the
`jsonText` body, `cache-control: max-age=3600`), with nothing re-implemented in Python, and no
server thread shares this interpreter's GIL while it is timed. A hit never reaches the origin.

Both arms are `CachedSession(backend="sqlite", cache_control=True)` on fresh database files,
with requests-cache's defaults otherwise, as users get it. The signed arm passes
`serializer=safe_pickle_serializer(secret_key=...)`, the documented way to sign: pickle, then
itsdangerous `Signer` (HMAC-SHA1 by default) on write, verified on every read. In
requests-cache 0.9.8 a bare `CachedSession(secret_key=...)` signs nothing (the key is accepted
and dropped); the script checks that, and checks that the signed arm really verifies: an entry
read with another key or altered in the database raises `BadSignature` instead of being served.

Timing mirrors bench/timing.ts: the two arms run one batch each per round in a rotating order,
warm-up rounds are dropped, and each arm reports the median over rounds of wall-clock time per
request (`time.perf_counter_ns`) and of this process's CPU time (`time.process_time_ns`).
Each timed request fetches the body as bytes (`.content`); requests-cache returns it as bytes,
as axios's `responseType: "text"` hands back the stored string. Units: ns per request.
"""

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time

import itsdangerous
import requests
import requests_cache
from itsdangerous import BadSignature
from requests_cache.serializers import safe_pickle_serializer

SIZES = (1024, 64 * 1024, 1024 * 1024)
# bench/run.ts's full plan; the bench always passes its own.
DEFAULT_PLAN = {
    "rounds": 31,
    "warmup": 3,
    "batchMs": 40,
    "minOps": 3,
    "maxCaseMs": 20_000,
    "minRounds": 9,
}


def log(line):
    print(line, file=sys.stderr, flush=True)


# --- timing: a line-by-line port of bench/timing.ts ----------------------------------------


def batch(run, ops):
    cpu_start = time.process_time_ns()
    start = time.perf_counter_ns()
    for _ in range(ops):
        run()
    wall = (time.perf_counter_ns() - start) / ops
    cpu = (time.process_time_ns() - cpu_start) / ops
    return wall, cpu


def batch_size(arms, plan):
    # Calibrated on a steady run of each arm; the slowest arm sets the batch, so every arm does
    # the same number of operations per round.
    slowest = 0.0
    for _, run in arms:
        batch(run, 1)
        started = time.perf_counter_ns()
        ops = 0
        per_op = 0.0
        while ops == 0 or time.perf_counter_ns() - started < plan["batchMs"] * 2e5:
            per_op, _ = batch(run, 1 + ops)
            ops += 1 + ops
        slowest = max(slowest, per_op)
    wanted = int((plan["batchMs"] * 1e6) // max(slowest, 1))
    return max(plan["minOps"], min(wanted, 100_000)), slowest


def rotate(items, round_):
    shift = round_ % len(items)
    rotated = items[shift:] + items[:shift]
    # Every other cycle also runs backwards, so no arm always follows the same neighbour.
    return rotated[::-1] if (round_ // len(items)) % 2 == 1 else rotated


def interleave(arms, plan):
    ops, slowest = batch_size(arms, plan)
    round_ms = (ops * slowest * len(arms)) / 1e6
    rounds = max(
        plan["minRounds"],
        min(plan["rounds"], int(plan["maxCaseMs"] // max(round_ms, 1e-9)) - plan["warmup"]),
    )
    wall = {name: [] for name, _ in arms}
    cpu = {name: [] for name, _ in arms}
    for round_ in range(plan["warmup"] + rounds):
        for name, run in rotate(list(arms), round_):
            w, c = batch(run, ops)
            if round_ < plan["warmup"]:
                continue
            wall[name].append(w)
            cpu[name].append(c)
    return wall, cpu


def paired(a, b):
    return [x - y for x, y in zip(a, b)]


def signed_vs_unsigned(wall, cpu):
    """Same fields as `signedVsUnsigned` in bench/timing.ts."""
    diffs = paired(wall["signed"], wall["unsigned"])
    middle = statistics.median(diffs)
    return {
        "unsigned": statistics.median(wall["unsigned"]),
        "signed": statistics.median(wall["signed"]),
        "added": middle,
        "addedSpread": statistics.median([abs(d - middle) for d in diffs]),
        "addedCpu": statistics.median(paired(cpu["signed"], cpu["unsigned"])),
        "rounds": len(wall["unsigned"]),
    }


# --- sessions and checks ------------------------------------------------------------------


def session(path, serializer=None, **kwargs):
    return requests_cache.CachedSession(
        path, backend="sqlite", serializer=serializer, cache_control=True, **kwargs
    )


def stored_blob(path):
    with sqlite3.connect(f"{path}.sqlite") as con:
        row = con.execute("SELECT value FROM responses").fetchone()
    return bytes(row[0])


def fetch_twice(client, url, bytes_):
    client.get(url)
    again = client.get(url)
    if not again.from_cache or len(again.content) != bytes_:
        raise SystemExit(f"requests-cache: the second request of {bytes_} B was not a hit")


def raises_bad_signature(get):
    try:
        get()
    except BadSignature:
        return True
    return False


def check_signing(url, directory, secret):
    """Facts the comparison rests on, each established here rather than assumed."""
    checks = {}
    signer = itsdangerous.Signer(secret_key=secret, salt="requests-cache")

    # 1. What a bare `secret_key=` does in this version: does the stored entry carry a signature?
    path = os.path.join(directory, "kwarg")
    kwarg = session(path, secret_key=secret)
    fetch_twice(kwarg, url, 1024)
    checks["secretKeyKwargSigns"] = signer.validate(stored_blob(path))
    kwarg.close()

    # 2. The signed arm's serializer: the stored entry is `pickle + "." + signature`, it
    #    verifies with the key, and neither another key nor an altered byte gets through.
    path = os.path.join(directory, "signed-check")
    signed = session(path, safe_pickle_serializer(secret_key=secret))
    fetch_twice(signed, url, 1024)
    blob = stored_blob(path)
    checks["signedEntryVerifies"] = signer.validate(blob)
    other = session(path, safe_pickle_serializer(secret_key=secret + "-other"))
    checks["otherKeyRejected"] = raises_bad_signature(lambda: other.get(url))
    other.close()
    # Alter one byte of the pickled response (before the separator and signature).
    body_end = blob.rindex(b".")
    tampered = bytearray(blob)
    tampered[body_end // 2] ^= 0x01
    with sqlite3.connect(f"{path}.sqlite") as con:
        con.execute("UPDATE responses SET value = ?", (sqlite3.Binary(bytes(tampered)),))
    checks["tamperedEntryRejected"] = raises_bad_signature(lambda: signed.get(url))
    signed.close()
    return checks


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--origin", required=True, help="base URL answering /<bytes>")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--plan", default=json.dumps(DEFAULT_PLAN), help="TimingPlan as JSON")
    args = parser.parse_args()
    plan = {**DEFAULT_PLAN, **json.loads(args.plan)}
    sizes = [int(s) for s in args.sizes.split(",")]
    secret = os.urandom(32).hex()

    with tempfile.TemporaryDirectory(prefix="signed-cache-bench-requests-cache-") as directory:
        checks = check_signing(f"{args.origin}/1024?check", directory, secret)
        required = ("signedEntryVerifies", "otherKeyRejected", "tamperedEntryRejected")
        failed = [name for name in required if not checks[name]]
        if failed:
            raise SystemExit(f"requests-cache signing is not in effect: {', '.join(failed)}")
        log("requests-cache: signed entries verified (another key and an altered entry rejected)")

        unsigned = session(os.path.join(directory, "unsigned"))
        signed = session(
            os.path.join(directory, "signed"), safe_pickle_serializer(secret_key=secret)
        )
        rows = []
        for bytes_ in sizes:
            url = f"{args.origin}/{bytes_}?requests-cache"
            for client in (unsigned, signed):
                fetch_twice(client, url, bytes_)

            def hit(client, url=url):
                response = client.get(url)
                # Every timed request must be a hit; checking costs both arms alike.
                if not response.from_cache:
                    raise SystemExit(f"requests-cache: a timed request of {url} missed")
                return response.content

            arms = [
                ("unsigned", lambda: hit(unsigned)),
                ("signed", lambda: hit(signed)),
            ]
            wall, cpu = interleave(arms, plan)
            rows.append({"bytes": bytes_, **signed_vs_unsigned(wall, cpu)})
            log(f"requests-cache sqlite hit {bytes_} B")
        unsigned.close()
        signed.close()

    json.dump(
        {
            "versions": {
                "python": sys.version.split()[0],
                "requests": requests.__version__,
                "requestsCache": requests_cache.__version__,
                "itsdangerous": _dist("itsdangerous"),
                "sqlite": sqlite3.sqlite_version,
            },
            "backend": "sqlite",
            "signing": "serializer=safe_pickle_serializer(secret_key=...): pickle + itsdangerous "
            "Signer (HMAC-SHA1, salt 'requests-cache')",
            "checks": checks,
            "plan": plan,
            "rows": rows,
        },
        sys.stdout,
    )
    print()


def _dist(name):
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
