#!/usr/bin/env node
/*
 * Drive the official Diffusion JavaScript client (diffusion@6.12.1) like the `diffusion` command-line tool.
 *
 *     node js-topics.js URL [global options] SUBCOMMAND [arguments]
 *
 * Global options (before or after the subcommand, except --property, which after `add` is a topic property):
 *   --principal NAME  --password PW  --property K=V (session property, repeatable)
 *   --connect-timeout S (default 10)  --timeout S (deadline for the whole subcommand, default 30)  --debug
 *   --js-dir DIR (the install.sh TARGET_DIR/js folder; default $DIFFUSION_JS_DIR, else NODE_PATH)
 *
 * Subcommands (TYPE is json|string|int64|double|binary; VALUE is read per type: json = JSON text,
 * string = the text itself, int64/double = a number, binary = hex):
 *   sub SELECTOR [--type any|TYPE] [--count N]
 *   add PATH --type TYPE [--value V] [--property K=V]...
 *   set PATH VALUE [--type TYPE] [--if-absent] [--if-value V] [--create]
 *   remove SELECTOR
 *   fetch SELECTOR [--values] [--properties]
 *   request PATH VALUE [--type TYPE] [--response-type TYPE] [--session ID]
 *   handle PATH [--type TYPE] [--reply V | --echo] [--property-key K]... [--count N]
 *   stream PATH [--type TYPE] [--count N]
 *
 * Prints one JSON object per line on stdout, with exactly the fields of the `diffusion` tool's `--json`
 * output plus "client": "js" and "t_ms"; the library logs nothing unless --debug (then to stderr).
 * Exit status: 0 success, 1 run-time error (after an `error` line), 2 usage error (before connecting).
 *
 * Where the JavaScript client differs (see interop/peers/README.md, "Topic and messaging drivers"):
 * - a rejected operation settles with the client's ErrorReason {id, reason}, whose id is the server's
 *   SERVICE_ERROR reason; topics.add rejects with its own TopicAddFailReason ids instead, which the
 *   driver maps back to the wire codes (table TOPIC_ADD_CODES);
 * - the public API gives no response code for a rejected connection: the driver reads it with the
 *   same read-only wrapper around the connection-response parser as js-session.js;
 * - JSON values are JavaScript numbers: integers beyond ±2^53 lose precision on the way in (JSON text
 *   is parsed by JSON.parse); on the way out the client hands over big CBOR integers as Int64, printed
 *   exactly;
 * - `--if-absent` with `--if-value` is a usage error, as in the Python driver (whose protocol has no OR);
 * - reconnection is turned off (the Python client's default), so a lost connection ends the run.
 */
'use strict';
const path = require('path');

const T0 = process.hrtime.bigint();
const TYPES = ['json', 'string', 'int64', 'double', 'binary'];
const TYPE_NAMES = { 14: 'binary', 15: 'json', 16: 'time_series', 17: 'string', 18: 'int64', 19: 'double', 20: 'record_v2', 21: 'unknown' };
const UNSUBSCRIBE_REASONS = ['requested', 'control', 'removal', 'authorization', 'unknown', 'back_pressure', 'branch_mappings'];
// topics.add rejects with a TopicAddFailReason whose id is the client's own; the SERVICE_ERROR reason
// each stands for (TOPICS.md §5.1). EXISTS (1) has no wire code of its own.
const TOPIC_ADD_CODES = { 2: 9004, 4: 9006, 7: 103, 9: 9011, 10: 110, 11: 9007, 14: 9010, 15: 9005 };
// The legacy UpdateFailReason ids and the reasons their names stand for (not used by topicUpdate.set,
// which rejects with ErrorReason; kept so that any such rejection still gets its code).
const UPDATE_FAIL_CODES = { 1: 500, 2: 501, 4: 503, 8: 505, 9: 110, 10: 111, '-1': 9012, '-2': 9013 };
// The client's close reason ids as the Python client's (and our) state names: closed by the client;
// closed by the server or the connection lost (server, reconnect aborted, transport error, idle,
// lost messages: Python says CLOSED_BY_SERVER for a lost connection); every other reason is a failed
// connection attempt (CLOSED_FAILED).
const CLOSE_STATES = { 0: 'CLOSED_BY_CLIENT', 1: 'CLOSED_BY_SERVER', 2: 'CLOSED_BY_SERVER', 6: 'CLOSED_BY_SERVER', 8: 'CLOSED_BY_SERVER', 16: 'CLOSED_BY_SERVER' };

// ------------------------------------------------------------------ output

/** A JSON fragment printed verbatim (exact int64s, doubles with their ".0"). */
class Raw { constructor(text) { this.text = text; } }

function emit(event, fields = {}) {
    const record = Object.assign({ event }, fields, {
        client: 'js', t_ms: Number((process.hrtime.bigint() - T0) / 1000n) / 1000
    });
    const raws = [];
    let line = JSON.stringify(record, (key, value) => {
        if (value instanceof Raw) { raws.push(value.text); return `\u0000RAW${raws.length - 1}\u0000`; }
        return value;
    });
    line = line.replace(/"\\u0000RAW(\d+)\\u0000"/g, (_, i) => raws[Number(i)]);
    process.stdout.write(line + '\n');
}

const log = (message) => process.stderr.write(`js-topics: ${message}\n`);

class RunError extends Error {}

// ------------------------------------------------------------------ values

/** VALUE text -> what the client takes for that datatype (throws Error if malformed). */
function parseValue(type, text, diffusion) {
    switch (type) {
        case 'json':
            try { return JSON.parse(text); } catch (e) { throw new Error(`not JSON text: ${e.message}`); }
        case 'string':
            return text;
        case 'int64': {
            if (!/^\s*[+-]?\d+\s*$/.test(text)) { throw new Error(`not an integer: '${text}'`); }
            const n = BigInt(text.trim());
            if (n < -(2n ** 63n) || n > 2n ** 63n - 1n) { throw new Error(`${text} is outside the int64 range`); }
            return n.toString();  // the client reads int64 text exactly
        }
        case 'double':
            if (!/^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$/.test(text)) { throw new Error(`not a number: '${text}'`); }
            return Number(text);
        case 'binary':
            if (!/^([0-9a-fA-F]{2})*$/.test(text)) { throw new Error(`not hex: '${text}'`); }
            return diffusion ? diffusion.datatypes.binary().from(Buffer.from(text, 'hex')) : Buffer.from(text, 'hex');
        default:
            throw new Error(`unknown type '${type}'`);
    }
}

const isInt64 = (v) => v !== null && typeof v === 'object' && typeof v.toNumber === 'function' && typeof v.toString === 'function' && 'buffer' in v;

function jsonOut(v) {
    if (isInt64(v)) { return new Raw(v.toString()); }
    if (typeof v === 'number') { return Number.isFinite(v) ? v : null; }  // JSON has no NaN: null, as serde_json
    if (Array.isArray(v)) { return v.map(jsonOut); }
    if (v !== null && typeof v === 'object') {
        const out = {};
        for (const k of Object.keys(v)) { out[k] = jsonOut(v[k]); }
        return out;
    }
    return v === undefined ? null : v;
}

/** A value as the tool prints it: json as JSON, int64/double as numbers, binary as lower-case hex. */
function render(type, v) {
    if (v === undefined || v === null) { return null; }
    switch (type) {
        case 'json': return jsonOut(typeof v.get === 'function' ? v.get() : v);
        case 'string': return String(v);
        case 'int64': return new Raw(isInt64(v) ? v.toString() : String(BigInt(v)));
        case 'double':
            if (!Number.isFinite(v)) { return null; }
            return Number.isInteger(v) && Math.abs(v) < 1e21 ? new Raw(`${v}.0`) : v;
        case 'binary':
            if (typeof v.asBuffer === 'function') { return v.asBuffer().toString('hex'); }
            return Buffer.from(v).toString('hex');
        default: return jsonOut(v);
    }
}

// ------------------------------------------------------------------ command line

const USAGE = `usage: node js-topics.js URL [global options] SUBCOMMAND [arguments]
global: --principal NAME --password PW --property K=V... --connect-timeout S --timeout S --debug --js-dir DIR
  sub SELECTOR [--type any|TYPE] [--count N]
  add PATH --type TYPE [--value V] [--property K=V]...
  set PATH VALUE [--type TYPE] [--if-absent] [--if-value V] [--create]
  remove SELECTOR
  fetch SELECTOR [--values] [--properties]
  request PATH VALUE [--type TYPE] [--response-type TYPE] [--session ID]
  handle PATH [--type TYPE] [--reply V | --echo] [--property-key K]... [--count N]
  stream PATH [--type TYPE] [--count N]
TYPE: json|string|int64|double|binary`;

function usage(message) {
    process.stderr.write(`js-topics.js: error: ${message}\n${USAGE}\n`);
    process.exit(2);
}

// Per subcommand: positional names, and options: 'v' takes a value, 'f' is a flag, 'm' repeats.
const COMMANDS = {
    sub: { pos: ['selector'], opts: { '--type': 'v', '--count': 'v' } },
    add: { pos: ['path'], opts: { '--type': 'v', '--value': 'v', '--property': 'm' } },
    set: { pos: ['path', 'value'], opts: { '--type': 'v', '--if-absent': 'f', '--if-value': 'v', '--create': 'f' } },
    remove: { pos: ['selector'], opts: {} },
    fetch: { pos: ['selector'], opts: { '--values': 'f', '--properties': 'f' } },
    request: { pos: ['path', 'value'], opts: { '--type': 'v', '--response-type': 'v', '--session': 'v' } },
    handle: { pos: ['path'], opts: { '--type': 'v', '--reply': 'v', '--echo': 'f', '--property-key': 'm', '--count': 'v' } },
    stream: { pos: ['path'], opts: { '--type': 'v', '--count': 'v' } }
};
const GLOBALS = { '--principal': 'v', '--password': 'v', '--connect-timeout': 'v', '--timeout': 'v', '--debug': 'f', '--js-dir': 'v' };

function keyValue(text, what) {
    const eq = (text || '').indexOf('=');
    if (eq < 0) { usage(`${what} needs KEY=VALUE, got '${text}'`); }
    return [text.slice(0, eq), text.slice(eq + 1)];
}

function parseArgs(argv) {
    const a = { url: null, command: null, g: {}, o: {}, pos: [], sessionProperties: {} };
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i];
        const spec = a.command ? COMMANDS[a.command] : null;
        const take = () => { if (i + 1 >= argv.length) { usage(`${arg} needs a value`); } return argv[++i]; };
        if (arg === '-h' || arg === '--help') { process.stdout.write(USAGE + '\n'); process.exit(0); }
        if (arg === '--property' && !a.command) {
            const [k, v] = keyValue(take(), '--property');
            a.sessionProperties[k] = v;
        } else if (spec && spec.opts[arg]) {
            const kind = spec.opts[arg];
            if (kind === 'f') { a.o[arg] = true; } else if (kind === 'm') { (a.o[arg] = a.o[arg] || []).push(take()); } else { a.o[arg] = take(); }
        } else if (GLOBALS[arg]) {
            a.g[arg] = GLOBALS[arg] === 'f' ? true : take();
        } else if (arg.startsWith('--') && arg.length > 2) {
            usage(`unexpected option '${arg}'${a.command ? ` for ${a.command}` : ''}`);
        } else if (a.url === null) {
            a.url = arg;
        } else if (a.command === null) {
            if (!COMMANDS[arg]) { usage(`unknown subcommand '${arg}'`); }
            a.command = arg;
        } else {
            a.pos.push(arg);
        }
    }
    if (a.url === null) { usage('missing URL'); }
    if (a.command === null) { usage('missing subcommand'); }
    const spec = COMMANDS[a.command];
    if (a.pos.length !== spec.pos.length) {
        usage(`${a.command} takes ${spec.pos.map((p) => p.toUpperCase()).join(' ')}, got ${a.pos.length} argument(s)`);
    }
    const seconds = (name, dflt) => {
        if (a.g[name] === undefined) { return dflt; }
        const n = Number(a.g[name]);
        if (!(n > 0)) { usage(`${name} must be a number of seconds above 0`); }
        return n;
    };
    const count = () => {
        if (a.o['--count'] === undefined) { return null; }
        if (!/^\d+$/.test(a.o['--count']) || Number(a.o['--count']) < 1) { usage('--count must be at least 1'); }
        return Number(a.o['--count']);
    };
    const type = (name, dflt, allowed = TYPES) => {
        const t = a.o[name] === undefined ? dflt : a.o[name];
        if (t !== undefined && t !== null && !allowed.includes(t)) { usage(`${name} must be one of ${allowed.join('|')}`); }
        return t;
    };
    const args = {
        url: a.url, command: a.command, principal: a.g['--principal'], password: a.g['--password'],
        connectTimeout: seconds('--connect-timeout', 10), timeout: seconds('--timeout', 30), debug: !!a.g['--debug'],
        jsDir: a.g['--js-dir'] || process.env.DIFFUSION_JS_DIR || null, sessionProperties: a.sessionProperties
    };
    spec.pos.forEach((name, i) => { args[name] = a.pos[i]; });
    const value = (t, text, what) => {
        try { return parseValue(t, text, null); } catch (e) { usage(`${what}: ${e.message}`); }
    };
    switch (a.command) {
        case 'sub':
            args.type = type('--type', 'any', ['any'].concat(TYPES));
            args.count = count();
            break;
        case 'add':
            args.type = type('--type', undefined);
            if (!args.type) { usage('add needs --type'); }
            args.valueText = a.o['--value'];
            if (args.valueText !== undefined) { value(args.type, args.valueText, '--value'); }
            args.topicProperties = {};
            for (const kv of a.o['--property'] || []) { const [k, v] = keyValue(kv, '--property'); args.topicProperties[k] = v; }
            break;
        case 'set':
            args.type = type('--type', null);
            args.ifAbsent = !!a.o['--if-absent'];
            args.ifValue = a.o['--if-value'];
            args.create = !!a.o['--create'];
            if (args.create && !args.type) { usage('set --create needs --type'); }
            if (args.ifAbsent && args.ifValue !== undefined) {
                usage('--if-absent and --if-value together are not supported (the Python driver cannot send an OR of constraints; both drivers refuse it)');
            }
            if (args.type) {
                value(args.type, args.value, 'VALUE');
                if (args.ifValue !== undefined) { value(args.type, args.ifValue, '--if-value'); }
            }
            break;
        case 'fetch':
            args.values = !!a.o['--values'];
            args.properties = !!a.o['--properties'];
            break;
        case 'request':
            args.type = type('--type', 'json');
            args.responseType = type('--response-type', args.type);
            value(args.type, args.value, 'VALUE');
            args.session = a.o['--session'];
            if (args.session !== undefined && !/^[0-9a-fA-F]{1,16}-[0-9a-fA-F]{1,16}$/.test(args.session)) {
                usage(`--session: not a session id (HEX-HEX): '${args.session}'`);
            }
            break;
        case 'handle':
            args.type = type('--type', 'json');
            if (a.o['--reply'] !== undefined && a.o['--echo']) { usage('--reply and --echo exclude each other'); }
            args.reply = a.o['--reply'];
            if (args.reply !== undefined) { value(args.type, args.reply, '--reply'); }
            args.propertyKeys = a.o['--property-key'] || [];
            args.count = count();
            break;
        case 'stream':
            args.type = type('--type', 'json');
            args.count = count();
            break;
        default:
            break;
    }
    return args;
}

// ------------------------------------------------------------------ client

function loadClient(jsDir) {
    const base = jsDir ? path.resolve(jsDir, 'node_modules', 'diffusion') : 'diffusion';
    const load = (sub) => require(sub ? path.join(require.resolve(base + '/package.json'), '..', sub) : base);
    try {
        return { diffusion: load(), internal: load };
    } catch (e) {
        emit('error', { code: null, message: `cannot load the diffusion package (${e.message}); run install.sh TARGET_DIR and pass --js-dir TARGET_DIR/js` });
        process.exit(1);
    }
}

/** (code, message) for an error event; see the header and README for the mapping. */
function describe(e, diffusion, handshakeCode) {
    const ErrorReason = diffusion.errors.UNHANDLED_MESSAGE.constructor;
    const TopicAddFailReason = diffusion.topics.TopicAddFailReason.EXISTS.constructor;
    const UpdateFailReason = diffusion.topics.UpdateFailReason.MISSING_TOPIC.constructor;
    if (e instanceof RunError) { return { code: null, message: e.message }; }
    if (e instanceof ErrorReason) { return { code: typeof e.id === 'number' ? e.id : null, message: e.reason }; }
    if (e instanceof TopicAddFailReason) {
        const code = TOPIC_ADD_CODES[e.id];
        return { code: code === undefined ? null : code, message: e.reason };
    }
    if (e instanceof UpdateFailReason) {
        const code = UPDATE_FAIL_CODES[e.id];
        return { code: code === undefined ? null : code, message: e.reason };
    }
    if (e && typeof e === 'object' && 'id' in e && 'canReconnect' in e) {  // a CloseReason: connection rejected or lost
        return { code: handshakeCode, message: e.message };
    }
    if (e instanceof Error) {
        const m = /^(\d+): /.exec(e.message);  // some rejections are Errors whose message starts with the reason
        const cause = e.cause && typeof e.cause === 'object' && typeof e.cause.id === 'number' && e.cause instanceof ErrorReason ? e.cause.id : null;
        return { code: m ? Number(m[1]) : cause, message: `${e.name}: ${e.message}` };
    }
    return { code: null, message: String(e) };
}

class Run {
    constructor(args, client) {
        this.args = args;
        this.diffusion = client.diffusion;
        this.internal = client.internal;
        this.deadline = Date.now() + args.timeout * 1000;
        this.session = null;
        this.closing = false;
        this.closeReason = null;
        this.handshakeCode = null;
        this.wakers = new Set();
        this.stopped = false;   // SIGINT / SIGTERM
        this.lost = false;      // the session closed under us
    }

    remaining() { return Math.max(0, this.deadline - Date.now()); }

    wake() { for (const w of this.wakers) { w(); } }

    /** Await a client call within the deadline. */
    call(promise, what) {
        let timer;
        const timeout = new Promise((_, reject) => {
            timer = setTimeout(() => reject(new RunError(`${what}: no answer within the ${this.args.timeout} s deadline`)), this.remaining());
        });
        return Promise.race([Promise.resolve(promise), timeout]).finally(() => clearTimeout(timer));
    }

    /** Wait until done() is true, a signal, the session's end or the deadline: says which. */
    wait(done) {
        return new Promise((resolve) => {
            const check = () => {
                const why = done() ? 'done' : this.lost ? 'lost' : this.stopped ? 'stop' : null;
                if (why) { finish(why); }
            };
            const timer = setTimeout(() => finish('deadline'), this.remaining());
            const finish = (why) => { clearTimeout(timer); this.wakers.delete(check); resolve(why); };
            this.wakers.add(check);
            check();
        });
    }

    /** As py-topics: without a count the deadline or a signal ends the run normally. */
    async until(done, what, counted) {
        const why = await this.wait(done);
        if (why === 'lost') { throw new RunError(`the session closed (${this.state()}) while waiting for ${what()}`); }
        if (why === 'deadline' && counted) { throw new RunError(`timed out after ${this.args.timeout} s waiting for ${what()}`); }
    }

    state() {
        if (this.closeReason) { return CLOSE_STATES[this.closeReason.id] || 'CLOSED_FAILED'; }
        return this.session && this.session.isConnected() ? 'CONNECTED_ACTIVE' : 'RECOVERING_RECONNECT';
    }

    observeHandshake() {
        // Read-only wrapper (as js-session.js): the public API gives a close reason, never the code.
        try {
            const deser = this.internal('src/internal/protocol/connection-response-deserialiser');
            const original = deser.deserialise;
            const run = this;
            deser.deserialise = function () {
                const r = original.apply(this, arguments);
                try { run.handshakeCode = r.response.id; } catch (e) { /* keep null */ }
                return r;
            };
        } catch (e) {
            log(`warning: cannot observe the connection response code (${e.message})`);
        }
    }

    async connect() {
        const a = this.args;
        const url = new URL(a.url);
        const secure = url.protocol === 'wss:' || url.protocol === 'https:';
        const options = {
            host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
            port: url.port ? Number(url.port) : (secure ? 443 : 80),
            secure,
            connectionTimeout: Math.min(a.connectTimeout * 1000, this.remaining())
        };
        if (url.pathname && url.pathname !== '/') { options.path = url.pathname; }
        if (a.principal !== undefined) { options.principal = a.principal; }
        if (a.password !== undefined) { options.credentials = a.password; }
        if (Object.keys(a.sessionProperties).length) { options.properties = a.sessionProperties; }
        // No reconnection, as the Python client by default: a lost connection ends the session, and
        // the run with an error, instead of a silent wait until the deadline.
        options.reconnect = false;
        this.session = await this.call(this.diffusion.connect(options), 'connect');
        this.session.on('close', (reason) => {
            this.closeReason = reason;
            if (!this.closing) { this.lost = true; this.wake(); }
        });
        emit('connected', { session_id: this.session.sessionId.toString() });
    }

    async close() {
        if (!this.session) { return; }
        this.closing = true;
        if (!this.closeReason) {
            let timer;
            try {
                const timeout = new Promise((resolve) => { timer = setTimeout(resolve, 5000); });
                const reason = await Promise.race([this.session.closeSession(), timeout]);
                if (reason && !this.closeReason) { this.closeReason = reason; }
            } catch (e) {
                log(`close failed: ${describe(e, this.diffusion, null).message}`);
            } finally {
                clearTimeout(timer);
            }
        }
        // No close reason within 5 s: say what the client says it is (closing a session towards a
        // stalled server can take longer than that).
        let state = this.state();
        if (!this.closeReason) { state = this.session.isClosed() ? 'CLOSED_BY_CLIENT' : this.session.isConnected() ? 'CONNECTED_ACTIVE' : 'RECOVERING_RECONNECT'; }
        emit('closed', { state });
    }

    async main() {
        for (const sig of ['SIGINT', 'SIGTERM']) { process.on(sig, () => { this.stopped = true; this.wake(); }); }
        this.observeHandshake();
        try {
            await this.connect();
        } catch (e) {
            const d = describe(e, this.diffusion, this.handshakeCode);
            emit('error', { code: d.code, message: `connect: ${d.message}` });
            return 1;
        }
        let status = 0;
        try {
            await this[`cmd_${this.args.command}`]();
        } catch (e) {  // report, never a stack trace
            emit('error', describe(e, this.diffusion, null));
            status = 1;
        }
        await this.close();
        return status;
    }

    datatype(type) { return this.diffusion.datatypes[type](); }

    value(type, text) { return parseValue(type, text, this.diffusion); }

    // --------------------------------------------------------------- topics

    async cmd_sub() {
        const a = this.args;
        let values = 0;
        const subscribed = new Set();
        const typeOf = (spec) => (a.type === 'any' ? TYPE_NAMES[spec.type] || String(spec.type) : a.type);
        const stream = this.session.addStream(a.selector, a.type === 'any' ? this.diffusion.datatypes.any() : this.datatype(a.type));
        stream.on('subscribe', (topic, spec) => {
            subscribed.add(topic);
            emit('subscribed', { path: topic, type: TYPE_NAMES[spec.type] || String(spec.type), properties: Object.assign({}, spec.properties) });
        });
        stream.on('value', (topic, spec, newValue, oldValue) => {
            if (a.count !== null && values >= a.count) { return; }
            const t = typeOf(spec);
            emit('value', { path: topic, type: t, value: render(t, newValue), old: render(t, oldValue) });
            values += 1;
            this.wake();
        });
        stream.on('unsubscribe', (topic, spec, reason) => {
            subscribed.delete(topic);
            let name = 'unknown';
            if (reason && typeof reason.id === 'number') {
                name = UNSUBSCRIBE_REASONS[reason.id] || 'unknown';
            } else if (reason && reason.reason === this.diffusion.topics.UnsubscribeReason.SUBSCRIPTION_REFRESH.reason) {
                name = 'subscription_refresh';  // local reason, no wire id
            }
            emit('unsubscribed', { path: topic, reason: name });
            this.wake();
        });
        stream.on('error', (e) => log(`value stream error: ${describe(e, this.diffusion, null).message}`));
        await this.call(this.session.select(a.selector), 'sub');
        emit('ready');
        await this.until(() => a.count !== null && values >= a.count, () => (a.count !== null ? `${a.count} values (got ${values})` : 'values'), a.count !== null);
        if (this.lost) { return; }
        await this.call(this.session.unsubscribe(a.selector), 'sub');
        // The unsubscription notifications may follow the response: give them a moment.
        const grace = Date.now() + Math.min(2000, this.remaining());
        while (subscribed.size && Date.now() < grace) { await new Promise((r) => setTimeout(r, 10)); }
        stream.close();
    }

    specification(type, properties) {
        const { TopicSpecification, TopicType } = this.diffusion.topics;
        return new TopicSpecification(TopicType[type.toUpperCase()], properties || {});
    }

    async cmd_add() {
        const a = this.args;
        const spec = this.specification(a.type, a.topicProperties);
        let result;
        if (a.valueText === undefined) {
            const r = await this.call(this.session.topics.add(a.path, spec), 'add');
            result = r.added ? 'created' : 'exists';
        } else {
            const r = await this.call(this.session.topicUpdate.set(a.path, this.datatype(a.type), this.value(a.type, a.valueText),
                { specification: spec }), 'add');
            const { TopicCreationResult } = this.diffusion.topicUpdate;
            result = r === TopicCreationResult.EXISTS ? 'exists' : 'created';
        }
        emit('added', { path: a.path, result });
    }

    /** The topic's own type, by fetch (the client has no other way to ask). */
    async lookupType(topicPath) {
        const result = await this.call(this.session.fetchRequest().fetch(`>${topicPath}`), 'set');
        for (const r of result.results()) {
            if (r.path() === topicPath) { return TYPE_NAMES[r.type()] || String(r.type()); }
        }
        throw new RunError(`set: no topic at '${topicPath}' (looked up with fetch to learn its type)`);
    }

    async cmd_set() {
        const a = this.args;
        if (!a.type) {
            a.type = await this.lookupType(a.path);
            if (!TYPES.includes(a.type)) { throw new RunError(`set: topic '${a.path}' is of type ${a.type}, which this tool does not set`); }
            try {
                parseValue(a.type, a.value, null);
                if (a.ifValue !== undefined) { parseValue(a.type, a.ifValue, null); }
            } catch (e) {
                throw new RunError(`set: the value does not fit the topic's type ${a.type}: ${e.message}`);
            }
        }
        const options = {};
        const constraints = this.diffusion.updateConstraints();
        if (a.ifAbsent) {
            options.constraint = a.create ? constraints.noTopic() : constraints.noValue();
        } else if (a.ifValue !== undefined) {
            options.constraint = constraints.value(this.value(a.type, a.ifValue), this.datatype(a.type));
        }
        if (a.create) { options.specification = this.specification(a.type); }
        await this.call(this.session.topicUpdate.set(a.path, this.datatype(a.type), this.value(a.type, a.value), options), 'set');
        emit('set', { path: a.path });
    }

    async cmd_remove() {
        const r = await this.call(this.session.topics.remove(this.args.selector), 'remove');
        emit('removed', { selector: this.args.selector, count: r.removedCount });
    }

    async cmd_fetch() {
        const a = this.args;
        let request = this.session.fetchRequest();
        if (a.values) { request = request.withValues(this.diffusion.datatypes.any()); }  // every type, each in its own
        if (a.properties) { request = request.withProperties(); }
        const result = await this.call(request.fetch(a.selector), 'fetch');
        for (const r of result.results()) {
            const t = TYPE_NAMES[r.type()] || String(r.type());
            const fields = { path: r.path(), type: t };
            const v = a.values ? r.value() : undefined;
            if (v !== undefined && v !== null) { fields.value = render(t, v); }
            if (a.properties) { fields.properties = Object.assign({}, r.specification().properties); }
            emit('fetched', fields);
        }
    }

    // --------------------------------------------------------------- messaging

    async cmd_request() {
        const a = this.args;
        const messages = this.session.messages;
        const value = this.value(a.type, a.value);
        const response = a.session === undefined
            ? messages.sendRequest(a.path, value, this.datatype(a.type), this.datatype(a.responseType))
            : messages.sendRequest(a.path, value, a.session, this.datatype(a.type), this.datatype(a.responseType));
        const r = await this.call(response, 'request');
        emit('response', { type: a.responseType, value: render(a.responseType, r) });
    }

    answer(request) {
        return this.args.reply !== undefined ? this.value(this.args.type, this.args.reply) : request;
    }

    async cmd_handle() {
        const a = this.args;
        let handled = 0;
        const handler = {
            onRequest: (request, context, responder) => {
                emit('request', {
                    path: context.path, from: context.sessionId ? context.sessionId.toString() : null,
                    properties: Object.assign({}, context.properties), type: a.type, value: render(a.type, request)
                });
                handled += 1;
                try {
                    responder.respond(this.answer(request), this.datatype(a.type));
                } catch (e) {
                    log(`cannot answer: ${describe(e, this.diffusion, null).message}`);
                    responder.reject(String(e && e.message));
                }
                this.wake();
            },
            onError: (e) => log(`request handler error: ${describe(e, this.diffusion, null).message}`),
            onClose: () => {}
        };
        const registration = await this.call(
            this.session.messages.addRequestHandler(a.path, handler, a.propertyKeys, this.datatype(a.type)), 'handle');
        emit('ready');
        await this.until(() => a.count !== null && handled >= a.count, () => (a.count !== null ? `${a.count} requests (got ${handled})` : 'requests'), a.count !== null);
        if (!this.lost) { await this.call(registration.close(), 'handle'); }
    }

    async cmd_stream() {
        const a = this.args;
        let handled = 0;
        const stream = {
            onRequest: (requestPath, request, responder) => {
                // Requests to a session carry no sender and no properties on the wire.
                emit('request', { path: requestPath, from: null, properties: {}, type: a.type, value: render(a.type, request) });
                handled += 1;
                responder.respond(request, this.datatype(a.type));
                this.wake();
            },
            onError: (e) => log(`request stream error: ${describe(e, this.diffusion, null).message}`),
            onClose: () => {}
        };
        this.session.messages.setRequestStream(a.path, stream, this.datatype(a.type), this.datatype(a.type));
        emit('ready', { session_id: this.session.sessionId.toString() });
        await this.until(() => a.count !== null && handled >= a.count, () => (a.count !== null ? `${a.count} requests (got ${handled})` : 'requests'), a.count !== null);
        await new Promise((r) => setTimeout(r, 50));  // let the last answer leave before closing
        this.session.messages.removeRequestStream(a.path);
    }
}

async function main() {
    const args = parseArgs(process.argv.slice(2));
    const client = loadClient(args.jsDir);
    client.diffusion.log(args.debug ? 'debug' : 'silent');
    let status;
    try {
        status = await new Run(args, client).main();
    } catch (e) {
        emit('error', { code: null, message: `internal: ${e && e.stack ? e.message : String(e)}` });
        status = 1;
    }
    process.exit(status);
}

main();
