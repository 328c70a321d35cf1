#!/usr/bin/env python3
"""Drive the official Diffusion Python client (diffusion==6.12.2) like the `diffusion` command-line tool.

    TARGET_DIR/py/bin/python py-topics.py URL [global options] SUBCOMMAND [arguments]

Global options (before or after the subcommand, except --property, which after `add` is a topic property):
  --principal NAME  --password PW  --property K=V (session property, repeatable)
  --connect-timeout S (default 10)  --timeout S (deadline for the whole subcommand, default 30)  --debug

Subcommands (TYPE is json|string|int64|double|binary; VALUE is read per type: json = JSON text,
string = the text itself, int64/double = a number, binary = hex):
  sub SELECTOR [--type any|TYPE] [--count N]
  add PATH --type TYPE [--value V] [--property K=V]...
  set PATH VALUE [--type TYPE] [--if-absent] [--if-value V] [--create]
  remove SELECTOR
  fetch SELECTOR [--values] [--properties]
  request PATH VALUE [--type TYPE] [--response-type TYPE] [--session ID]
  handle PATH [--type TYPE] [--reply V | --echo] [--property-key K]... [--count N]
  stream PATH [--type TYPE] [--count N]

Prints one JSON object per line on stdout, with exactly the fields of the `diffusion` tool's `--json`
output plus "client": "python" and "t_ms"; everything else (the library's logs) goes to stderr.
Exit status: 0 success, 1 run-time error (after an `error` line), 2 usage error (before connecting).

Where the Python client cannot do what the tool does (see interop/peers/README.md, "Topic and
messaging drivers"):
* no typed stream for "any": `--type any` uses one stream of the client's OBJECT datatype, which
  hands each topic's value over in the topic's own type;
* no public deregistration of a request handler: after `handle --count N` the session is closed,
  which ends the registration on the server;
* no OR of update constraints at protocol 25: `--if-absent` with `--if-value` is a usage error;
* its TopicSpecification knows a fixed set of property names and parses booleans: a property it
  would drop or rewrite is a usage error rather than a silent change;
* exceptions keep no reason code: the driver reads it where the client converts a SERVICE_ERROR
  into an exception (a read-only wrapper), and falls back to the documented class -> code table;
* a JSON value stream fails inside the client on STRING/INT64/DOUBLE topics (subscribed, but no
  value: the conversion raises); `--type any` reads them;
* forwarded requests are dispatched by their exact path: a handler does not get requests for
  paths below its own (the client rejects them, 9003);
* a JSON topic whose value is JSON null cannot be told from one without a value.
"""
from __future__ import annotations

import argparse
import asyncio
import enum
import json
import logging
import math
import re
import signal
import sys
import time

T0 = time.perf_counter_ns()
# JSON lines go to the real stdout only; anything the library prints goes to stderr.
_OUT = sys.stdout
sys.stdout = sys.stderr

TYPES = ("json", "string", "int64", "double", "binary")
INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1
NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\Z")
INTEGER = re.compile(r"[+-]?\d+\Z")
UNSUBSCRIBE_REASONS = {
    "REQUESTED": "requested", "CONTROL": "control", "REMOVAL": "removal", "AUTHORIZATION": "authorization",
    "UNKNOWN_UNSUBSCRIBE_REASON": "unknown", "BACK_PRESSURE": "back_pressure",
    "BRANCH_MAPPINGS": "branch_mappings", "SUBSCRIPTION_REFRESH": "subscription_refresh",
}
# The client's own exception for each SERVICE_ERROR reason (its documented mapping, inverted).
# Used only when the reason-code observation below cannot be installed. 503 and 9000 share
# NoSuchTopicError, 500 and 9001 share IncompatibleTopicError: the update codes are chosen.
CLASS_CODES = {
    "NoSuchTopicError": 503, "IncompatibleTopicError": 500, "UpdateFailedError": 501,
    "UnsatisfiedConstraintError": 9012, "IncompatibleExistingTopicError": 9010, "ExistingTopicError": 9004,
    "InvalidTopicPathError": 9005, "InvalidTopicSpecificationError": 9006, "TopicLicenseLimitError": 9007,
    "AddTopicError": 9011, "InvalidUpdateStreamError": 9013, "IncompatibleTopicStateError": 111,
    "UnhandledMessageError": 109, "NoSuchSessionError": 107, "IncompatibleDatatypeError": 108,
    "RejectedRequestError": 9003, "HandlerConflictError": 201, "CancellationError": 102,
    "ClusterRoutingError": 112, "ClusterRepartitionError": 110, "NoSuchEventError": 9002,
}


def emit(event: str, **fields) -> None:
    record = {"event": event}
    record.update(fields)
    record["client"] = "python"
    record["t_ms"] = round((time.perf_counter_ns() - T0) / 1e6, 3)
    _OUT.write(json.dumps(record, allow_nan=False) + "\n")
    _OUT.flush()


def log(message: str) -> None:
    print(f"py-topics: {message}", file=sys.stderr, flush=True)


class RunError(Exception):
    """A run-time failure the driver reports itself (no server reason code)."""


# ------------------------------------------------------------------ values

def parse_value(type_name: str, text: str):
    """VALUE text -> the Python value the client takes for that datatype (ValueError if malformed)."""
    if type_name == "json":
        try:
            return json.loads(text)
        except ValueError as ex:
            raise ValueError(f"not JSON text: {ex}") from None
    if type_name == "string":
        return text
    if type_name == "int64":
        if not INTEGER.match(text.strip()):
            raise ValueError(f"not an integer: {text!r}")
        n = int(text)
        if not INT64_MIN <= n <= INT64_MAX:
            raise ValueError(f"{text} is outside the int64 range")
        return n
    if type_name == "double":
        if not NUMBER.match(text.strip()):
            raise ValueError(f"not a number: {text!r}")
        return float(text)
    if type_name == "binary":
        try:
            return bytes.fromhex(text)
        except ValueError:
            raise ValueError(f"not hex: {text!r}") from None
    raise ValueError(f"unknown type {type_name!r}")


def render(type_name: str, value):
    """A value as the tool prints it: json as JSON, int64/double as numbers, binary as lower-case hex."""
    if value is None:
        return None
    if hasattr(value, "value") and hasattr(value, "type_name"):  # a datatype instance
        value = value.value
    if type_name == "binary" or isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if type_name == "double":
        return float(value) if math.isfinite(value) else None
    if type_name == "json":
        return _finite(value)
    return value


def _finite(value):
    """JSON has no NaN or infinities: print them as null (as serde_json does)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def type_name_of(spec_or_type) -> str:
    topic_type = getattr(spec_or_type, "topic_type", spec_or_type)
    return getattr(topic_type, "type_name", str(topic_type))


def property_text(value) -> str:
    """Properties as strings exactly: the client parses booleans into True/False."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


def properties_of(spec) -> dict:
    props = getattr(spec, "properties", None) or {}
    return {str(k): property_text(v) for k, v in dict(props).items()}


# ------------------------------------------------------------------ errors

_REASON_ATTR = "_interop_reason_code"


def install_reason_observer() -> bool:
    """Read-only observation: tag each exception the client builds from a SERVICE_ERROR with the
    reason code it read (the exceptions themselves keep only the message)."""
    try:
        from diffusion.internal.session.exception_handler import ErrorReasonException
        original = ErrorReasonException.__dict__["convert_exception"].__func__

        def convert_exception(cls, reason, message):
            ex = original(cls, reason, message)
            try:
                setattr(ex, _REASON_ATTR, int(reason.reason_code))
            except Exception:  # an exception type that refuses attributes: fall back to the class table
                pass
            return ex
        ErrorReasonException.convert_exception = classmethod(convert_exception)
        return True
    except Exception as ex:
        log(f"warning: cannot observe SERVICE_ERROR reason codes ({ex}); using the exception class table")
        return False


def describe(ex: BaseException):
    """(code, message) for an error event."""
    code = None
    seen = set()
    cur = ex
    while cur is not None and id(cur) not in seen:  # the code may sit on a cause
        seen.add(id(cur))
        code = getattr(cur, _REASON_ATTR, None)
        if code is None:
            code = CLASS_CODES.get(type(cur).__name__)
        if code is None and getattr(cur, "response_code", None) is not None:  # a rejected connection
            rc = cur.response_code
            code = getattr(getattr(rc, "value", None), "code", None)
        if code is not None:
            break
        cur = cur.__cause__ or cur.__context__
    if isinstance(ex, asyncio.TimeoutError):
        message = "timed out"
    elif isinstance(ex, RunError):
        message = str(ex)
    else:
        message = f"{type(ex).__name__}: {ex}" if str(ex) else type(ex).__name__
    return code, message


# ------------------------------------------------------------------ command line

class Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def key_value(text: str):
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"needs KEY=VALUE, got {text!r}")
    return tuple(text.split("=", 1))


def positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def seconds(text: str) -> float:
    s = float(text)
    if not s > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return s


def global_options(parser, suppress: bool) -> None:
    d = (lambda v: argparse.SUPPRESS) if suppress else (lambda v: v)
    parser.add_argument("--principal", default=d(None))
    parser.add_argument("--password", default=d(None))
    parser.add_argument("--connect-timeout", type=seconds, default=d(10.0), metavar="S")
    parser.add_argument("--timeout", type=seconds, default=d(30.0), metavar="S",
                        help="deadline for the whole subcommand (default 30)")
    parser.add_argument("--debug", action="store_true", default=d(False), help="let the library log to stderr")


def parse_args(argv=None):
    p = Parser(prog="py-topics.py", description=__doc__.split("\n\n")[0],
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url", help="server URL, e.g. ws://127.0.0.1:8080 (the client appends /diffusion)")
    global_options(p, suppress=False)
    p.add_argument("--property", dest="session_properties", action="append", type=key_value, default=[],
                   metavar="K=V", help="session property (repeatable)")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)

    def command(name, help_text):
        c = sub.add_parser(name, help=help_text)
        global_options(c, suppress=True)
        return c

    c = command("sub", "subscribe and print events")
    c.add_argument("selector")
    c.add_argument("--type", choices=("any",) + TYPES, default="any")
    c.add_argument("--count", type=positive, help="after N value events unsubscribe, close and exit")
    c = command("add", "add a topic (add-and-set with --value)")
    c.add_argument("path")
    c.add_argument("--type", choices=TYPES, required=True)
    c.add_argument("--value")
    c.add_argument("--property", dest="topic_properties", action="append", type=key_value, default=[],
                   metavar="K=V", help="topic property (repeatable)")
    c = command("set", "set a topic's value")
    c.add_argument("path")
    c.add_argument("value")
    c.add_argument("--type", choices=TYPES)
    c.add_argument("--if-absent", action="store_true")
    c.add_argument("--if-value", metavar="V")
    c.add_argument("--create", action="store_true")
    c = command("remove", "remove the topics a selector matches")
    c.add_argument("selector")
    c = command("fetch", "fetch topics")
    c.add_argument("selector")
    c.add_argument("--values", action="store_true")
    c.add_argument("--properties", action="store_true")
    c = command("request", "send a request to a path (or to a session)")
    c.add_argument("path")
    c.add_argument("value")
    c.add_argument("--type", choices=TYPES, default="json")
    c.add_argument("--response-type", choices=TYPES)
    c.add_argument("--session", metavar="ID")
    c = command("handle", "register a request handler")
    c.add_argument("path")
    c.add_argument("--type", choices=TYPES, default="json")
    how = c.add_mutually_exclusive_group()
    how.add_argument("--reply", metavar="V")
    how.add_argument("--echo", action="store_true")
    c.add_argument("--property-key", action="append", default=[], metavar="K")
    c.add_argument("--count", type=positive)
    c = command("stream", "answer requests sent to this session")
    c.add_argument("path")
    c.add_argument("--type", choices=TYPES, default="json")
    c.add_argument("--count", type=positive)

    args = p.parse_args(argv)
    args.parser = p
    check_args(args)
    return args


def check_args(args) -> None:
    """Everything that can be checked before connecting (exit 2)."""
    p = args.parser

    def value(type_name, text, what):
        try:
            return parse_value(type_name, text)
        except ValueError as ex:
            p.error(f"{what}: {ex}")

    if args.command == "add":
        args.parsed_value = value(args.type, args.value, "--value") if args.value is not None else None
        args.spec = topic_specification(p, args.type, dict(args.topic_properties))
    elif args.command == "set":
        if args.create and not args.type:
            p.error("set --create needs --type")
        if args.if_absent and args.if_value is not None:
            p.error("--if-absent and --if-value together need an OR of constraints, "
                    "which the Python client (protocol 25) cannot send")
        if args.type:
            args.parsed_value = value(args.type, args.value, "VALUE")
            args.parsed_if_value = value(args.type, args.if_value, "--if-value") if args.if_value is not None else None
    elif args.command == "request":
        args.response_type = args.response_type or args.type
        args.parsed_value = value(args.type, args.value, "VALUE")
        args.session_id = None
        if args.session is not None:
            m = re.fullmatch(r"([0-9a-fA-F]{1,16})-([0-9a-fA-F]{1,16})", args.session)
            if not m:
                p.error(f"--session: not a session id (HEX-HEX): {args.session!r}")
            args.session_id = (int(m.group(1), 16), int(m.group(2), 16))
    elif args.command == "handle":
        args.parsed_reply = value(args.type, args.reply, "--reply") if args.reply is not None else None


def topic_specification(p, type_name: str, props: dict):
    import diffusion.datatypes as dt
    try:
        spec = dt.get(type_name).with_properties(**props)
    except Exception as ex:
        p.error(f"--property: the Python client rejects these topic properties ({ex})")
    got = properties_of(spec)
    for key, want in props.items():
        if key not in got:
            p.error(f"--property {key}: the Python client does not know this topic property and would drop it")
        if got[key] != want:
            p.error(f"--property {key}={want}: the Python client would send {key}={got[key]}")
    return spec


# ------------------------------------------------------------------ the run

class Run:
    def __init__(self, args):
        self.args = args
        self.loop = asyncio.get_running_loop()
        self.deadline = self.loop.time() + args.timeout
        self.stop = asyncio.Event()        # SIGINT / SIGTERM
        self.lost = asyncio.Event()        # the session closed under us
        self.session = None

    def remaining(self) -> float:
        return max(0.0, self.deadline - self.loop.time())

    async def wait(self, done: asyncio.Event) -> str:
        """Wait for `done`, a signal, the session's end or the deadline: says which."""
        waits = {"done": done, "stop": self.stop, "lost": self.lost}
        tasks = {asyncio.ensure_future(e.wait()): name for name, e in waits.items()}
        finished, pending = await asyncio.wait(tasks, timeout=self.remaining(), return_when=asyncio.FIRST_COMPLETED)
        for t in pending:
            t.cancel()
        names = {tasks[t] for t in finished}
        for name in ("done", "lost", "stop"):
            if name in names:
                return name
        return "deadline"

    async def call(self, awaitable):
        """Await a client call within the deadline (TimeoutError past it)."""
        return await asyncio.wait_for(awaitable, self.remaining())

    async def connect(self):
        import diffusion
        from diffusion.session import SessionListener
        run = self

        class Listener(SessionListener):
            async def on_session_event(self, *, session, old_state, new_state):
                if new_state.name in ("CLOSED_BY_SERVER", "CLOSED_FAILED"):
                    run.lost.set()

        factory = diffusion.sessions().listener(Listener())
        a = self.args
        if a.principal is not None:
            factory = factory.principal(a.principal)
        if a.password is not None:
            factory = factory.credentials(diffusion.Credentials(a.password))
        if a.session_properties:
            factory = factory.properties(dict(a.session_properties))
        self.session = await asyncio.wait_for(factory.open(a.url), min(a.connect_timeout, self.remaining()))
        emit("connected", session_id=str(self.session.session_id))

    async def close(self) -> None:
        if self.session is None:
            return
        try:
            await asyncio.wait_for(self.session.close(), 5)
        except Exception as ex:
            log(f"close failed: {describe(ex)[1]}")
        emit("closed", state=self.session.state.name)

    async def main(self) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.loop.add_signal_handler(sig, self.stop.set)
            except (NotImplementedError, RuntimeError):
                pass
        try:
            await self.connect()
        except Exception as ex:
            code, message = describe(ex)
            emit("error", code=code, message=f"connect: {message}")
            return 1
        status = 0
        try:
            await getattr(self, "cmd_" + self.args.command)()
        except Exception as ex:  # report, never a traceback
            code, message = describe(ex)
            if isinstance(ex, asyncio.TimeoutError):
                message = f"{self.args.command}: no answer within the {self.args.timeout:g} s deadline"
            emit("error", code=code, message=message)
            status = 1
        await self.close()
        return status

    async def until(self, done: asyncio.Event, what, counted: bool) -> None:
        """Run until `done` (the count reached). Without a count the deadline ends the run
        normally, with one it is an error. A signal (SIGINT, SIGTERM) ends it normally, as Ctrl-C
        does for the tool. `what()` describes what was awaited, for the error message."""
        why = await self.wait(done)
        if why == "lost":
            raise RunError(f"the session closed ({self.session.state.name}) while waiting for {what()}")
        if why == "deadline" and counted:
            raise RunError(f"timed out after {self.args.timeout:g} s waiting for {what()}")

    # --------------------------------------------------------------- topics

    async def cmd_sub(self) -> None:
        import diffusion.datatypes as dt
        from diffusion.features.topics import ValueStreamHandler
        a = self.args
        done = asyncio.Event()
        values = 0
        subscribed = set()

        def stream_type(spec):
            return type_name_of(spec) if a.type == "any" else a.type

        def on_subscribe(*, topic_path, topic_spec, **_):
            subscribed.add(topic_path)
            emit("subscribed", path=topic_path, type=type_name_of(topic_spec), properties=properties_of(topic_spec))

        def on_update(*, topic_path, topic_spec, topic_value, old_value=None, **_):
            nonlocal values
            if done.is_set():
                return
            t = stream_type(topic_spec)
            emit("value", path=topic_path, type=t, value=render(t, topic_value), old=render(t, old_value))
            values += 1
            if a.count is not None and values >= a.count:
                done.set()

        def on_unsubscribe(*, topic_path, reason, **_):
            subscribed.discard(topic_path)
            name = getattr(reason, "name", str(reason))
            emit("unsubscribed", path=topic_path, reason=UNSUBSCRIBE_REASONS.get(name, "unknown"))

        # OBJECT: the client's datatype that takes every topic with its value in the topic's own type.
        datatype = dt.OBJECT if a.type == "any" else dt.get(a.type)
        self.session.topics.add_value_stream(
            a.selector, ValueStreamHandler(datatype, subscribe=on_subscribe, update=on_update, unsubscribe=on_unsubscribe))
        await self.call(self.session.topics.subscribe(a.selector))
        emit("ready")
        await self.until(done, lambda: f"{a.count} values (got {values})" if a.count else "values", a.count is not None)
        if self.lost.is_set():
            return
        await self.call(self.session.topics.unsubscribe(a.selector))
        # The unsubscription notifications may follow the response: give them a moment.
        grace = self.loop.time() + min(2.0, self.remaining())
        while subscribed and self.loop.time() < grace:
            await asyncio.sleep(0.01)

    async def cmd_add(self) -> None:
        a = self.args
        topics = self.session.topics
        if a.parsed_value is None:
            result = await self.call(topics.add_topic(a.path, a.spec))
        else:
            result = await self.call(topics.add_and_set_topic(a.path, a.spec, a.parsed_value))
        emit("added", path=a.path, result=result.name.lower())

    async def lookup_type(self, path: str) -> str:
        """The topic's own type, by fetch (the client has no other way to ask)."""
        result = await self.call(self.session.topics.fetch_request().fetch(">" + path))
        for r in result.results:
            if r.path == path:
                return type_name_of(r.specification)
        raise RunError(f"set: no topic at {path!r} (looked up with fetch to learn its type)")

    async def cmd_set(self) -> None:
        from diffusion.features.topics.update.constraint_factory import ConstraintFactory
        import diffusion.datatypes as dt
        a = self.args
        if a.type is None:
            a.type = await self.lookup_type(a.path)
            if a.type not in TYPES:
                raise RunError(f"set: topic {a.path!r} is of type {a.type}, which this tool does not set")
            try:
                a.parsed_value = parse_value(a.type, a.value)
                a.parsed_if_value = parse_value(a.type, a.if_value) if a.if_value is not None else None
            except ValueError as ex:
                raise RunError(f"set: the value does not fit the topic's type {a.type}: {ex}") from None
        factory = ConstraintFactory()
        constraint = None
        if a.if_absent:
            constraint = factory.no_topic if a.create else factory.no_value
        elif a.parsed_if_value is not None:
            constraint = factory.value(dt.get(a.type)(a.parsed_if_value))
        topics = self.session.topics
        if a.create:
            await self.call(topics.add_and_set_topic(a.path, dt.get(a.type), a.parsed_value, constraint))
        else:
            await self.call(topics.set_topic(a.path, a.parsed_value, dt.get(a.type), constraint))
        emit("set", path=a.path)

    async def cmd_remove(self) -> None:
        result = await self.call(self.session.topics.remove_topic(self.args.selector))
        emit("removed", selector=self.args.selector, count=result.removed_count)

    async def cmd_fetch(self) -> None:
        import diffusion.datatypes as dt
        a = self.args
        request = self.session.topics.fetch_request()
        if a.values:
            request = request.with_values(dt.OBJECT)  # every topic type, each value in its own type
        if a.properties:
            request = request.with_properties()
        result = await self.call(request.fetch(a.selector))
        for r in result.results:
            t = type_name_of(r.specification)
            fields = {"path": r.path, "type": t}
            if a.values and r.value is not None:
                fields["value"] = render(t, r.value)
            if a.properties:
                fields["properties"] = properties_of(r.specification)
            emit("fetched", **fields)

    # --------------------------------------------------------------- messaging

    async def cmd_request(self) -> None:
        import diffusion
        import diffusion.datatypes as dt
        a = self.args
        request = dt.get(a.type)(a.parsed_value)
        messaging = self.session.messaging
        try:
            if a.session_id is not None:
                target = diffusion.SessionId(*a.session_id)
                response = await self.call(messaging.send_request_to_session(a.path, target, request, a.response_type))
            else:
                response = await self.call(messaging.send_request_to_path(a.path, request, a.response_type))
        except dt.InvalidDataError as ex:
            # The client insists that the response's datatype name equals the expected one.
            raise RunError(f"request: the client cannot read the response as {a.response_type} "
                           f"(it requires the response's datatype to be exactly that): {ex!r}") from None
        t = getattr(response, "type_name", a.response_type)
        emit("response", type=t, value=render(t, response))

    async def serve(self, register, ready_fields: dict, request_fields) -> None:
        """Answer requests (handle, stream) until the count: `register(handler)` installs the
        client's handler, `request_fields(context)` gives a request line's path, from and properties.
        Each request is answered with --reply, else echoed."""
        from diffusion.messaging import RequestHandler
        a = self.args
        reply = getattr(a, "reply", None)
        done = asyncio.Event()
        handled = 0

        def on_request(request, **context):
            nonlocal handled
            emit("request", **request_fields(context), type=a.type, value=render(a.type, request))
            handled += 1
            if a.count is not None and handled >= a.count:
                done.set()
            return a.parsed_reply if reply is not None else request

        await register(RequestHandler(on_request, a.type, a.type))
        emit("ready", **ready_fields)
        await self.until(done, lambda: f"{a.count} requests (got {handled})" if a.count else "requests", a.count is not None)
        await asyncio.sleep(0.05)  # let the last answer leave before closing

    async def cmd_handle(self) -> None:
        a = self.args

        async def register(handler):
            await self.call(self.session.messaging.add_request_handler(
                a.path, handler, session_properties=list(a.property_key)))

        def request_fields(context):
            sender = context.get("sender_session_id")
            properties = dict(context.get("session_properties") or {})
            return {"path": context.get("path", a.path), "from": str(sender) if sender is not None else None,
                    "properties": {str(k): property_text(v) for k, v in properties.items()}}

        # The client has no public deregistration: closing the session (after this) ends the registration.
        await self.serve(register, {}, request_fields)

    async def cmd_stream(self) -> None:
        a = self.args

        async def register(handler):
            self.session.messaging.add_stream_handler(a.path, handler, addressed=True)

        # Requests to a session carry no sender and no properties on the wire.
        await self.serve(register, {"session_id": str(self.session.session_id)},
                         lambda context: {"path": a.path, "from": None, "properties": {}})


async def run(args) -> int:
    install_reason_observer()
    return await Run(args).main()


def main():
    args = parse_args()
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.CRITICAL + 1, stream=sys.stderr)
    if not args.debug:
        try:  # the client logs through structlog, which prints whatever logging's level says
            import structlog
            structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL + 1),
                                logger_factory=structlog.PrintLoggerFactory(sys.stderr))
        except Exception:
            pass
    try:
        code = asyncio.run(run(args))
    except KeyboardInterrupt:  # a signal before the driver's own handler was installed
        emit("error", code=None, message="interrupted")
        code = 1
    except Exception as ex:  # anything unexpected still comes out as JSON
        emit("error", code=None, message=f"internal: {describe(ex)[1]}")
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
