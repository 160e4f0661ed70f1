#!/usr/bin/env python3
"""Token requests at a fixed rate, for scripts/bench-load.sh.

    bench-load-tokens.py URL CA USER:PASSWORD RATE SECONDS

Sends GET URL (with Basic credentials) RATE times a second for SECONDS over a pool of
keep-alive TLS connections, each request at its scheduled time (a late one is counted from
when it was due, so a stalled server shows in the latency), and prints one line:
`sent=N ok=N errors=N p50_ms=X p99_ms=Y max_ms=Z`.
"""
import asyncio
import base64
import ssl
import sys
import time
from urllib.parse import urlsplit

CONNECTIONS = 64


async def one(reader, writer, path, host, auth):
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {auth}\r\n\r\n".encode()
    )
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def main():
    url, ca, creds, rate, seconds = sys.argv[1:6]
    rate, seconds = float(rate), float(seconds)
    parts = urlsplit(url)
    path = parts.path + ("?" + parts.query if parts.query else "")
    auth = base64.b64encode(creds.encode()).decode()
    ctx = ssl.create_default_context(cafile=ca)
    pool = asyncio.Queue()
    for _ in range(CONNECTIONS):
        pool.put_nowait(await asyncio.open_connection(parts.hostname, parts.port, ssl=ctx))
    latencies, errors = [], 0

    async def request(due):
        nonlocal errors
        conn = await pool.get()
        try:
            status = await one(*conn, path, parts.netloc, auth)
            if status != 200:
                errors += 1
        except Exception:
            errors += 1
            conn = await asyncio.open_connection(parts.hostname, parts.port, ssl=ctx)
        latencies.append((time.monotonic() - due) * 1000)
        pool.put_nowait(conn)

    start = time.monotonic()
    tasks = []
    n = int(rate * seconds)
    for i in range(n):
        due = start + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(request(due)))
    await asyncio.gather(*tasks)
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    print(
        f"sent={n} ok={n - errors} errors={errors} "
        f"p50_ms={pick(0.50):.1f} p99_ms={pick(0.99):.1f} max_ms={latencies[-1]:.1f}"
    )


asyncio.run(main())
