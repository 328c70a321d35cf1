#!/usr/bin/env python3
"""Checks one interop run of scripts/interop.sh: an official client's JSON lines (from
interop/peers/py-session.py or js-session.js), its exit status, and diffusion-test-server's
own JSON log.

    interop_check.py SCENARIO CLIENT DIR CLIENT_STATUS SERVER_STATUS
    interop_check.py --describe SCENARIO

DIR holds client.jsonl, client.err, server.jsonl and server.err. Prints one line per failed
check and exits 1 if there is any; exits 0 silently when everything holds.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from urllib.parse import unquote

DESCRIPTIONS = {
    "anonymous": "anonymous: connect, 20 user pings, a system ping answered, close",
    "principal": "principal, password, two properties: the server saw them as sent",
    "wrong-password": "wrong password: 116",
    "reject-113": "rejected with 113",
    "reject-115": "rejected with 115",
    "reject-119": "rejected with 119",
    "reconnect": "connection dropped: reconnected to the same session (105), pings succeed",
    "unknown-session": "reconnection to an unknown session: 117, the session ends closed",
    "stall": "server stall: JS closes the connection as idle; Python's pings time out",
    "malformed": "truncated connection response: the client fails cleanly",
}

PROTOCOL = {"python": (25, "headers", "PY"), "js": (29, "query", "WB")}
ENVIRONMENT_PREFIX = {"python": "PYTHON_", "js": "NODE_"}
# What the principal scenario proposes (scripts/interop.sh).
PROPERTIES = [("Foo", "bar"), ("Region", "eu west é")]

CRASH_PATTERNS = [
    re.compile(r"Traceback \(most recent call last\)"),
    re.compile(r"Exception ignored in"),
    re.compile(r"^\s+at .+:\d+:\d+\)?$", re.M),  # a Node stack frame
    re.compile(r"Unhandled|unhandled rejection", re.I),
    re.compile(r"Segmentation fault|core dumped|panicked at"),
]


class Run:
    def __init__(self, scenario: str, client: str, folder: Path, client_rc: int, server_rc: int):
        self.scenario, self.client = scenario, client
        self.client_rc, self.server_rc = client_rc, server_rc
        self.problems: list[str] = []
        self.lines = self._json_lines(folder / "client.jsonl", "client")
        self.server = self._json_lines(folder / "server.jsonl", "server")
        self.client_err = _read(folder / "client.err")
        self.server_err = _read(folder / "server.err")

    # --- helpers ---------------------------------------------------------------------------
    def _json_lines(self, path: Path, who: str) -> list[dict]:
        out = []
        for n, line in enumerate(_read(path).splitlines(), 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError:
                self.fail(f"{who} line {n} is not JSON: {line[:120]!r}")
                continue
            if not isinstance(value, dict):
                self.fail(f"{who} line {n} is not a JSON object")
                continue
            out.append(value)
        return out

    def fail(self, message: str) -> None:
        self.problems.append(message)

    def expect(self, condition: bool, message: str) -> bool:
        if not condition:
            self.fail(message)
        return condition

    def events(self, name: str, **fields) -> list[dict]:
        return [e for e in self.lines if e.get("event") == name and _matches(e, fields)]

    def first(self, name: str, **fields) -> dict | None:
        found = self.events(name, **fields)
        return found[0] if found else None

    def server_events(self, name: str, **fields) -> list[dict]:
        return [e for e in self.server if e.get("event") == name and _matches(e, fields)]

    def index(self, event: dict) -> int:
        return next(i for i, e in enumerate(self.lines) if e is event)

    # --- checks for every run ----------------------------------------------------------------
    def common(self) -> dict:
        """Checks what every run must show; returns the client's result line (or {})."""
        if self.client_rc in (124, 137):
            self.fail(f"the client hung: killed by timeout (status {self.client_rc})")
        for pattern in CRASH_PATTERNS:
            m = pattern.search(self.client_err)
            if m:
                self.fail(f"client stderr shows a crash: {m.group(0).strip()!r}")
        start = self.first("start")
        self.expect(start is not None, "no start line from the client")
        result = self.lines[-1] if self.lines else {}
        if not self.expect(result.get("event") == "result", "the client's last line is not its result"):
            result = {}
        elif result.get("ok") is True:
            self.expect(self.client_rc == 0, f"result ok but exit status {self.client_rc}")
        else:
            self.expect(self.client_rc == 1, f"result not ok but exit status {self.client_rc}")
        for e in self.events("error", stage="internal"):
            self.fail(f"the client script failed internally: {e.get('message')}")

        # The server: a clean stop, a well-formed log.
        self.expect(self.server_rc == 0, f"server exit status {self.server_rc}")
        if self.expect(bool(self.server), "empty server log"):
            first = self.server[0]
            self.expect(first.get("event") == "listening"
                        and str(first.get("url", "")).startswith("ws://127.0.0.1:"),
                        f"server's first line is not listening on 127.0.0.1: {first}")
            self.expect(self.server[-1].get("event") == "shutdown",
                        "server log does not end with its shutdown line")
        if "panicked" in self.server_err:
            self.fail("the server panicked: " + self.server_err.strip().splitlines()[-1])
        for e in self.server_events("error"):
            self.fail(f"server error: {e.get('message')}")
        for e in self.server_events("session", kind="protocol_error"):
            self.fail(f"server saw a protocol error: {e.get('error')}")

        # Every upgrade request is the client's protocol and carrier.
        version, carrier, client_type = PROTOCOL[self.client]
        upgrades = self.server_events("upgrade")
        for u in upgrades:
            got = (u.get("version"), u.get("carrier"), u.get("client_type"), u.get("path"))
            self.expect(got == (version, carrier, client_type, "/diffusion"),
                        f"upgrade conn {u.get('conn')}: (version, carrier, ty, path) = {got}, "
                        f"expected {(version, carrier, client_type, '/diffusion')}")
            self.expect("parse_error" not in u, f"server could not read the parameters: {u.get('parse_error')}")
        return result

    def connected_session(self) -> str | None:
        """The session id the client reports, checked against the server's 100."""
        connected = self.first("connected")
        if not self.expect(connected is not None, "the client never connected"):
            return None
        self.expect(connected.get("response_code") == 100,
                    f"connected with response code {connected.get('response_code')}, expected 100")
        sid = connected.get("session_id")
        opened = self.server_events("session", kind="connected")
        self.expect([s.get("session_id") for s in opened] == [sid],
                    f"server opened {[s.get('session_id') for s in opened]}, client has {sid}")
        responses = [r for r in self.server_events("response") if r.get("code") == 100]
        self.expect(len(responses) == 1 and responses[0].get("session_id") == sid
                    and responses[0].get("len") == 55,
                    f"server's 100 responses: {responses}")
        return sid

    def pings(self, ok: int, failed: int = 0) -> None:
        summary = self.first("pings")
        got = (summary or {}).get("ok"), (summary or {}).get("failed")
        self.expect(got == (ok, failed), f"pings (ok, failed) = {got}, expected {(ok, failed)}")

    def rejected(self, code: int, fault: str | None) -> None:
        """The client reported rejection `code`; the server sent it (3 bytes) and no session."""
        result = self.lines[-1] if self.lines else {}
        self.expect(result.get("ok") is True and result.get("expected_error") == code,
                    f"result {result}, expected ok with expected_error {code}")
        errors = self.events("error", stage="connect")
        self.expect([e.get("response_code") for e in errors] == [code],
                    f"connect errors report codes {[e.get('response_code') for e in errors]}, expected [{code}]")
        self.expect(not self.events("connected"), "the client reports a connected session")
        responses = self.server_events("response")
        got = [(r.get("code"), r.get("len"), r.get("fault")) for r in responses]
        self.expect(got == [(code, 3, fault)], f"server responses {got}, expected {[(code, 3, fault)]}")
        self.expect(not self.server_events("session", kind="connected"), "the server opened a session")
        closes = [c for c in self.server_events("close") if c.get("by") == "server"]
        self.expect(len(closes) == 1, f"the server closed {len(closes)} connection(s), expected 1")

    def dropped(self) -> None:
        faults = self.server_events("fault", fault="dropped", how="fin")
        self.expect(len(faults) == 1, f"server drops: {faults}")
        detached = self.server_events("session", kind="detached")
        self.expect(any(d.get("kept") for d in detached), "the server did not keep the session after the drop")

    # --- the scenarios ---------------------------------------------------------------------
    def anonymous(self, result: dict) -> None:
        self.expect(result.get("ok") is True, "result not ok")
        sid = self.connected_session()
        self.pings(20)
        wait = self.first("system_ping_wait")
        self.expect(bool(wait and wait.get("answered", 0) >= 1), f"no system ping answered: {wait}")
        self.expect(bool(self.events("system_ping")), "the client reports no system ping")
        up = self.server_events("upgrade")
        self.expect([(u.get("principal"), u.get("credentials")) for u in up] == [(None, "none")],
                    f"upgrades (principal, credentials): {[(u.get('principal'), u.get('credentials')) for u in up]}")
        user_pings = self.server_events("message", dir="in", service_name="USER_PING")
        self.expect(len(user_pings) == 20, f"server received {len(user_pings)} USER_PINGs, expected 20")
        answers = {m.get("cid") for m in self.server_events("message", dir="out", type="SERVICE_RESPONSE")}
        self.expect({m.get("cid") for m in user_pings} <= answers, "some USER_PINGs were not answered")
        answered = self.server_events("session", kind="system_ping_answered", session_id=sid)
        self.expect(len(answered) >= 1, "the server's log shows no answered system ping")
        closed = self.first("closed")
        if self.client == "python":
            self.expect(bool(closed and closed.get("state") == "CLOSED_BY_CLIENT"), f"closed: {closed}")
            # The Python client closes with a WebSocket close frame only.
            self.expect(any(c.get("by") == "client" and c.get("close_code") == 1000
                            for c in self.server_events("close")), "server saw no WebSocket close 1000")
        else:
            self.expect(bool(closed and closed.get("reason_id") == 0), f"closed: {closed}")
            # The JavaScript client sends CLOSE_REQUEST; the server ends the session.
            self.expect(bool(self.server_events("session", kind="close_requested", session_id=sid)),
                        "server saw no CLOSE_REQUEST")
            self.expect(bool(self.server_events("session", kind="session_closed", session_id=sid,
                                                reason_kind="client_requested")),
                        "server did not close the session at the client's request")

    def principal(self, result: dict) -> None:
        self.expect(result.get("ok") is True, "result not ok")
        sid = self.connected_session()
        self.pings(3)
        expected = dict(PROPERTIES)
        prefix = ENVIRONMENT_PREFIX[self.client]
        up = self.server_events("upgrade")
        if not self.expect(len(up) == 1, f"{len(up)} upgrades, expected 1"):
            return
        u = up[0]
        self.expect(u.get("principal") == "admin", f"server read principal {u.get('principal')!r}")
        self.expect(u.get("credentials") == "password", f"server read credentials {u.get('credentials')!r}")
        self._properties("upgrade", u.get("properties") or {}, expected, prefix)
        # In the order sent: the raw sp parameter.
        sp = (u.get("params") or {}).get("sp", "")
        if self.client == "python":
            env = (u.get("properties") or {}).get("$Environment", "")
            want = ",".join(f'"{x}"' for kv in PROPERTIES + [("$Environment", env)] for x in kv)
            self.expect(sp == want, f"sp header {sp!r}, expected {want!r}")
        else:
            try:
                order = list(json.loads(unquote(sp)))
            except ValueError:
                order = None
            want = [k for k, _ in PROPERTIES] + ["$Environment"]
            self.expect(order == want, f"sp query keys {order}, expected {want}")
        opened = self.server_events("session", kind="connected", session_id=sid)
        if self.expect(len(opened) == 1, "no connected session event for the client's session"):
            self.expect(opened[0].get("principal") == "admin", f"session principal {opened[0].get('principal')!r}")
            self._properties("session", opened[0].get("properties") or {}, expected, prefix)

    def _properties(self, where: str, props: dict, expected: dict, prefix: str) -> None:
        user = {k: v for k, v in props.items() if k != "$Environment"}
        self.expect(user == expected, f"{where} properties {user}, expected {expected}")
        self.expect(str(props.get("$Environment", "")).startswith(prefix),
                    f"{where} $Environment {props.get('$Environment')!r}, expected {prefix}…")

    def wrong_password(self, result: dict) -> None:
        self.rejected(116, None)
        rejected = self.server_events("session", kind="rejected")
        self.expect([r.get("code") for r in rejected] == [116], f"server rejections {rejected}")
        up = self.server_events("upgrade")
        self.expect([(x.get("principal"), x.get("credentials")) for x in up] == [("admin", "password")],
                    f"upgrades {[(x.get('principal'), x.get('credentials')) for x in up]}")

    def reject(self, code: int) -> None:
        self.rejected(code, "reject-all")

    def reconnect(self, result: dict) -> None:
        self.expect(result.get("ok") is True, "result not ok")
        sid = self.connected_session()
        self.pings(20)
        if self.client == "python":
            back = self.first("state", old="RECOVERING_RECONNECT", new="CONNECTED_ACTIVE")
        else:
            back = self.first("state", new="connected", reconnected=True)
            handshakes = [h.get("response_code") for h in self.events("handshake")]
            self.expect(handshakes == [100, 105], f"JS handshakes {handshakes}, expected [100, 105]")
        if self.expect(back is not None, "the client reports no reconnection"):
            later = [p for p in self.events("ping") if self.index(p) > self.index(back)]
            self.expect(bool(later) and later[-1].get("n") == 20,
                        f"pings after the reconnection: {[p.get('n') for p in later]}")
        self.dropped()
        up = self.server_events("upgrade")
        self.expect([u.get("reconnect") for u in up] == [False, True], f"upgrades reconnect = {[u.get('reconnect') for u in up]}")
        got = [(r.get("code"), r.get("session_id"), r.get("len")) for r in self.server_events("response")]
        self.expect(got == [(100, sid, 55), (105, sid, 55)], f"server responses {got}, expected 100 then 105 for {sid}")
        re_ = self.server_events("session", kind="reconnected")
        self.expect([(r.get("code"), r.get("session_id")) for r in re_] == [(105, sid)], f"server reconnections {re_}")
        if len(up) == 2:
            conn = up[1].get("conn")
            pings = self.server_events("message", dir="in", service_name="USER_PING", conn=conn)
            self.expect(len(pings) >= 1, "no USER_PING on the reconnected connection")

    def unknown_session(self, result: dict) -> None:
        self.expect(result.get("ok") is True, "result not ok")
        self.connected_session()
        closed = self.first("closed") or {}
        if self.client == "python":
            self.expect(bool(self.first("state", old="RECOVERING_RECONNECT", new="CLOSED_FAILED")),
                        "no RECOVERING_RECONNECT -> CLOSED_FAILED")
            self.expect(closed.get("state") == "CLOSED_FAILED", f"closed: {closed}")
        else:
            handshakes = [h.get("response_code") for h in self.events("handshake")]
            self.expect(handshakes == [100, 117], f"JS handshakes {handshakes}, expected [100, 117]")
            self.expect(bool(self.first("state", new="closed", reason_id=4)), "no close with reason 4 (handshake rejected)")
            self.expect(closed.get("state") == "closed" and closed.get("reason_id") == 4, f"closed: {closed}")
            self.expect(not self.first("state", new="connected"), "the client reconnected")
        self.dropped()
        up = self.server_events("upgrade")
        self.expect([u.get("reconnect") for u in up] == [False, True],
                    f"upgrades reconnect = {[u.get('reconnect') for u in up]} (one reconnection, then no more)")
        got = [(r.get("code"), r.get("len"), r.get("fault")) for r in self.server_events("response")]
        self.expect(got == [(100, 55, None), (117, 3, "reconnect-answer")], f"server responses {got}")
        self.expect(not self.server_events("session", kind="reconnected"), "the server resumed the session")

    def stall(self, result: dict) -> None:
        self.connected_session()
        stalls = self.server_events("fault", fault="stalled", after_messages=3)
        if self.expect(len(stalls) == 1, f"server stalls: {stalls}"):
            at = self.server.index(stalls[0])
            conn = stalls[0].get("conn")
            sent = [m for m in self.server[at:] if m.get("event") == "message" and m.get("dir") == "out"
                    and m.get("conn") == conn]
            self.expect(not sent, f"the server sent {len(sent)} message(s) after stalling")
        if self.client == "python":
            # No idle detection: the session stays up, pings 4 and 5 time out.
            self.expect(result.get("ok") is False, "result ok, expected failed pings")
            self.pings(3, 2)
            errors = [(e.get("n"), e.get("error_class")) for e in self.events("ping_error")]
            self.expect(errors == [(4, "Timeout"), (5, "Timeout")], f"ping errors {errors}")
            left = self.first("exit_without_close") or {}
            self.expect(left.get("state") == "CONNECTED_ACTIVE", f"state at exit {left.get('state')}")
        else:
            self.expect(result.get("ok") is True, "result not ok")
            self.pings(3)
            idle = self.first("state", new="closed", reason_id=8)
            connected = self.first("connected")
            if self.expect(idle is not None, "no close as idle (reason 8)") and connected:
                after = idle["t_ms"] - connected["t_ms"]
                self.expect(after >= 2000, f"closed as idle {after:.0f} ms after connecting, before 2 x the period")
            closed = self.first("closed") or {}
            self.expect(closed.get("reason_id") == 8, f"closed: {closed}")

    def malformed(self, result: dict) -> None:
        self.expect(result.get("ok") is False, "result ok, expected a failed connection")
        self.expect(not self.events("connected"), "the client reports a connected session")
        errors = self.events("error", stage="connect")
        self.expect(len(errors) == 1, f"{len(errors)} connect errors, expected 1")
        start, end = self.first("start"), self.lines[-1] if self.lines else None
        if start and end:
            took = end["t_ms"] - start["t_ms"]
            self.expect(took < 5000, f"the client took {took:.0f} ms to fail (connect timeout 5 s)")
        if self.client == "js":
            shakes = self.events("handshake")
            self.expect(len(shakes) == 1 and "error" in shakes[0] and len(shakes[0].get("bytes_hex", "")) == 40,
                        f"JS handshake lines {shakes}, expected one parse error on 20 bytes")
            self.expect(bool(errors) and errors[0].get("close_reason_id") == 5,
                        f"JS close reason {errors[0].get('close_reason_id') if errors else None}, expected 5")
        got = [(r.get("len"), r.get("fault")) for r in self.server_events("response")]
        self.expect(got == [(20, "truncated")], f"server responses {got}")

    def check(self) -> list[str]:
        result = self.common()
        name = self.scenario
        if name.startswith("reject-"):
            self.reject(int(name.split("-", 1)[1]))
        else:
            getattr(self, name.replace("-", "_"))(result)
        return self.problems


def _matches(event: dict, fields: dict) -> bool:
    return all(event.get(k) == v for k, v in fields.items())


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[1] == "--describe":
        print(DESCRIPTIONS[argv[2]])
        return 0
    if len(argv) != 6 or argv[1] not in DESCRIPTIONS or argv[2] not in PROTOCOL:
        print(__doc__, file=sys.stderr)
        return 2
    run = Run(argv[1], argv[2], Path(argv[3]), int(argv[4]), int(argv[5]))
    problems = run.check()
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
