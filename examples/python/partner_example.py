"""sluice from Python: the REST API with requests, the live stream with websockets, resuming with the cursor.

    pip install requests websockets        (or: apt-get install python3-requests python3-websockets)
    python3 examples/python/partner_example.py
"""
import asyncio
import json
import ssl

import requests
import websockets

BASE = "https://localhost:8443/cityxchange"
CERT = ("certs/clients/demo.crt", "certs/clients/demo.key")
CA = "certs/ca.crt"

# REST: the legacy shapes; p/k/a are strings (float4, 9 significant digits), v1-v3 integers.
rows = requests.get(f"{BASE}/rows", params={"slu_id": 1, "cnt": 2}, cert=CERT, verify=CA, timeout=10)
print(rows.status_code, rows.json())
bad = requests.get(f"{BASE}/rows", params={"slu_id": 1, "cnt": 0}, cert=CERT, verify=CA, timeout=10)
print(bad.status_code, bad.json()["parameter"], bad.json()["message"])


async def follow(slu_ids, since=None, stop_after=3):
    """Prints readings as they are committed; returns the cursor to resume from next time."""
    tls = ssl.create_default_context(cafile=CA)
    tls.load_cert_chain(*CERT)
    url = f"wss://localhost:8443/cityxchange/stream?slu_id={','.join(map(str, slu_ids))}"
    if since:
        url += f"&since={since}"
    cursor, seen = since, 0
    async with websockets.connect(url, ssl=tls) as ws:
        async for message in ws:
            frame = json.loads(message)
            cursor = frame.get("cursor", cursor)  # keep the last cursor of any frame
            if frame["type"] == "readings":
                for r in frame["readings"]:
                    print("reading", r["slu_id"], r["t"], "V1", r["v1"], "A1", r["a1"])
                    seen += 1
            elif frame["type"] != "progress":
                print(frame["type"], {k: v for k, v in frame.items() if k not in ("type", "cursor")})
            if seen >= stop_after:
                return cursor


cursor = asyncio.run(follow([1, 2]))
print("resume later with since =", cursor[:24] + "...")
