#!/usr/bin/env python3
"""A sluice stream client that cannot miss a reading.

Standard library + `websockets` (Debian: python3-websockets). It connects over mutual TLS (PEM files, or a
.p12 converted with the `openssl` command), subscribes, yields every reading, keeps the last cursor, and on any
disconnect it may retry (1006, 1011, 1012, 1013, 4408, 4429) reconnects with jittered exponential backoff and
resumes with `since=<cursor>`: every committed reading of its SLUs exactly once. Refusals that retrying cannot
fix (4400, 4401, 4403, 4410, 1003, 1009) raise SluiceRefused.

Library:
    client = SluiceClient("https://localhost:8443/cityxchange", cert="demo.crt", key="demo.key", ca="ca.crt", slu_ids=[1, 2])
    async for reading in client.readings():
        print(reading["slu_id"], reading["t"], reading["v1"])      # exactly the /latest object
    # client.cursor: where to resume later (pass it as since=)

Server-Sent Events instead of a WebSocket (standard library only, http.client): `client.sse_readings()`, a
blocking iterator, or `--sse`; the cursor is the event id, sent back as Last-Event-ID on every reconnect.

CLI (JSON lines on stdout, events and the final cursor on stderr):
    python3 clients/python/sluice_client.py --cert certs/clients/demo.crt --key certs/clients/demo.key \\
        --ca certs/ca.crt --slu 1,2
"""
import argparse
import asyncio
import http.client
import json
import os
import random
import ssl
import subprocess
import sys
import tempfile
import urllib.parse

import websockets

FATAL = {1003, 1009, 4400, 4401, 4403, 4410}


class SluiceRefused(Exception):
    """The gateway refused in a way retrying cannot fix (bad request, revoked, no grants, expired cursor)."""

    def __init__(self, code, reason):
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason


def tls_context(ca, cert=None, key=None, p12=None, p12_password=None):
    """Verifies the gateway against `ca` and presents the partner certificate (PEM pair, or .p12 via openssl)."""
    ctx = ssl.create_default_context(cafile=ca)
    if p12:
        # The standard library cannot read PKCS#12: the openssl command turns it into a PEM the ssl module loads.
        pem = subprocess.run(
            ["openssl", "pkcs12", "-in", p12, "-nodes", "-passin", f"pass:{p12_password or ''}"],
            check=True, capture_output=True,
        ).stdout
        fd, path = tempfile.mkstemp(suffix=".pem")
        try:
            os.write(fd, pem)
            os.close(fd)
            ctx.load_cert_chain(path)
        finally:
            os.unlink(path)
    elif cert and key:
        ctx.load_cert_chain(cert, key)
    return ctx


class SluiceClient:
    def __init__(self, url, cert=None, key=None, ca=None, p12=None, p12_password=None, slu_ids=None, since=None,
                 retry_base_s=0.25, retry_cap_s=15.0, on_event=None):
        self.url = url.rstrip("/")
        self.ssl = tls_context(ca, cert, key, p12, p12_password)
        self.slu_ids = list(slu_ids) if slu_ids else None
        self.cursor = since
        self.retry_base_s = retry_base_s
        self.retry_cap_s = retry_cap_s
        self.on_event = on_event or (lambda *_: None)
        self._stop = False

    def _stream_url(self):
        parts = urllib.parse.urlsplit(self.url)
        query = {}
        if self.slu_ids:
            query["slu_id"] = ",".join(str(i) for i in self.slu_ids)
        if self.cursor:
            query["since"] = self.cursor
        scheme = "wss" if parts.scheme == "https" else "ws"
        return urllib.parse.urlunsplit((scheme, parts.netloc, parts.path + "/stream", urllib.parse.urlencode(query), ""))

    def stop(self):
        self._stop = True

    async def readings(self):
        """Yields every reading of the subscription, exactly once, across reconnects (WebSocket, asyncio)."""
        attempt = 0
        while not self._stop:
            try:
                async with websockets.connect(self._stream_url(), ssl=self.ssl, max_size=None) as ws:
                    self.on_event("connected", self.cursor)
                    async for text in ws:
                        frame = json.loads(text)
                        if isinstance(frame.get("cursor"), str):
                            # Yield first, then move the cursor: a reading is never counted as delivered
                            # before the caller has it.
                            for reading in frame.get("readings", []) if frame.get("type") == "readings" else []:
                                yield reading
                            self.cursor = frame["cursor"]
                            attempt = 0
                        elif frame.get("type") == "error":
                            self.on_event("error", frame)
                code, reason = ws.close_code, ws.close_reason
            except websockets.exceptions.InvalidStatusCode as err:
                code, reason = (4403 if err.status_code in (401, 403) else 1013), f"HTTP {err.status_code}"
            except (OSError, websockets.exceptions.WebSocketException, asyncio.TimeoutError) as err:
                code, reason = 1006, str(err)
            if code in FATAL:
                raise SluiceRefused(code, reason)
            if self._stop:
                return
            delay = min(self.retry_cap_s, self.retry_base_s * 2 ** attempt)
            delay = delay / 2 + random.random() * delay / 2  # jitter: many clients do not reconnect in lockstep
            attempt += 1
            self.on_event("disconnected", {"code": code, "reason": reason, "retry_in_s": round(delay, 3)})
            await asyncio.sleep(delay)


    def _backoff(self, attempt):
        delay = min(self.retry_cap_s, self.retry_base_s * 2 ** attempt)
        return delay / 2 + random.random() * delay / 2

    def sse_readings(self):
        """The same over Server-Sent Events (GET …/events): a blocking iterator, standard library only."""
        import time
        parts = urllib.parse.urlsplit(self.url)
        attempt = 0
        while not self._stop:
            query = {"slu_id": ",".join(str(i) for i in self.slu_ids)} if self.slu_ids else {}
            headers = {"Accept": "text/event-stream"}
            if self.cursor:
                headers["Last-Event-ID"] = self.cursor
            conn = http.client.HTTPSConnection(parts.hostname, parts.port or 443, context=self.ssl, timeout=90)
            code, reason = 1006, "connection lost"
            try:
                conn.request("GET", parts.path + "/events" + ("?" + urllib.parse.urlencode(query) if query else ""), headers=headers)
                res = conn.getresponse()
                if res.status != 200:
                    body = res.read().decode("utf8", "replace")
                    code, reason = (4403 if res.status in (401, 403) else 1013), f"HTTP {res.status} {body[:200]}"
                else:
                    self.on_event("connected", self.cursor)
                    event, data, event_id = "message", [], None
                    for raw in res:
                        line = raw.decode("utf8").rstrip("\n")
                        if line == "":
                            if data and event == "readings":
                                for reading in json.loads("\n".join(data)):
                                    yield reading
                            elif data and event == "error":
                                err = json.loads("\n".join(data))
                                self.on_event("error", err)
                                if "close" in err:
                                    code, reason = err["close"], f'{err.get("code")}: {err.get("message")}'
                            if event_id is not None:
                                self.cursor = event_id  # after the readings it carries were yielded
                                attempt = 0
                            event, data, event_id = "message", [], None
                        elif line.startswith("id: "):
                            event_id = line[4:]
                        elif line.startswith("event: "):
                            event = line[7:]
                        elif line.startswith("data: "):
                            data.append(line[6:])
            except (OSError, http.client.HTTPException) as err:
                code, reason = 1006, str(err)
            finally:
                conn.close()
            if code in FATAL:
                raise SluiceRefused(code, reason)
            if self._stop:
                return
            delay = self._backoff(attempt)
            attempt += 1
            self.on_event("disconnected", {"code": code, "reason": reason, "retry_in_s": round(delay, 3)})
            time.sleep(delay)


def main(argv=None):
    p = argparse.ArgumentParser(description="Print live sluice readings as JSON lines; resumes across disconnects.")
    p.add_argument("--url", default="https://localhost:8443/cityxchange")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--p12")
    p.add_argument("--p12-password", default=os.environ.get("SLUICE_P12_PASSWORD"))
    p.add_argument("--ca", default="certs/ca.crt")
    p.add_argument("--slu", help="comma-separated SLU ids (default: every SLU you are granted)")
    p.add_argument("--since", help="a cursor from an earlier run")
    p.add_argument("--sse", action="store_true", help="read the Server-Sent Events stream instead of the WebSocket")
    args = p.parse_args(argv)
    if not args.p12 and not (args.cert and args.key):
        p.error("give --cert and --key, or --p12")

    def event(kind, detail):
        print(json.dumps({"event": kind, "detail": detail}), file=sys.stderr, flush=True)

    client = SluiceClient(args.url, cert=args.cert, key=args.key, ca=args.ca, p12=args.p12, p12_password=args.p12_password,
                          slu_ids=[int(s) for s in args.slu.split(",")] if args.slu else None, since=args.since, on_event=event)

    async def run():
        async for reading in client.readings():
            print(json.dumps(reading), flush=True)

    try:
        if args.sse:
            for reading in client.sse_readings():
                print(json.dumps(reading), flush=True)
        else:
            asyncio.run(run())
    except SluiceRefused as err:
        event("refused", {"code": err.code, "reason": err.reason})
        return 2
    except KeyboardInterrupt:
        pass
    finally:
        print(json.dumps({"cursor": client.cursor}), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
