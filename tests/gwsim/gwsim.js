#!/usr/bin/env node
/*
 * gwsim: a stand-in for the IBKR Client Portal Gateway (clientportal.gw),
 * for brokerd's tests and benchmarks.
 *
 * Node and the npm package ws only: its TLS (OpenSSL inside Node), HTTP
 * stack (llhttp) and WebSocket framing are independent of brokerd's
 * (mbedTLS, http-parser, wslay), so the two check each other.  The
 * interface is fixed by tests/gwsim/README.md; the behaviour follows
 * shared/IBKR.md: two session tiers (401 without the read-only session, 400
 * "no bridge" without the brokerage session), a 10/s sliding window answered
 * with 429, 411 on POST without Content-Length, snapshot pre-flight, the
 * order reply chain, cookies from /tickle, the /v1/api/ws streaming socket.
 */
'use strict';

const https = require('node:https');
const http = require('node:http');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { performance } = require('node:perf_hooks');

const API = '/v1/api';

function usage(msg) {
	if (msg)
		process.stderr.write(`gwsim: ${msg}\n`);
	process.stderr.write('usage: gwsim.js [--cert-mode self|expired|ca] ' +
	    '[--port N] [--control-port N] [--dir DIR] [--san LIST] ' +
	    '[--cert-dir DIR] [--no-tickets] [--ciphers LIST] ' +
	    '[--exit-on-stdin-eof] [--verbose]\n');
	process.exit(msg ? 2 : 0);
}

/*
 * end_connections: end every TLS connection as an idle timeout does, a
 * close_notify alert then FIN (tls.TLSSocket.end), and forget the action.
 */
function endConnections() {
	if (!behaviour.end_connections)
		return;
	behaviour.end_connections = false;
	for (const s of sockets)
		s.end();
}

function parseArgs(argv) {
	const o = { certMode: 'self', port: 0, controlPort: 0, dir: null,
	    certDir: null, san: 'IP:127.0.0.1,DNS:localhost',
	    tickets: true, stdinEof: false, verbose: false, ciphers: null };
	for (let i = 0; i < argv.length; i++) {
		let a = argv[i], v = null;
		const eq = a.indexOf('=');
		if (a.startsWith('--') && eq > 0) {
			v = a.slice(eq + 1);
			a = a.slice(0, eq);
		}
		const val = () => {
			if (v !== null)
				return v;
			if (i + 1 >= argv.length)
				usage(`${a} needs a value`);
			return argv[++i];
		};
		switch (a) {
		case '--cert-mode': o.certMode = val(); break;
		case '--port': o.port = Number(val()); break;
		case '--control-port': o.controlPort = Number(val()); break;
		case '--dir': o.dir = val(); break;
		case '--cert-dir': o.certDir = val(); break;
		case '--san': o.san = val(); break;
		case '--no-tickets': o.tickets = false; break;
		case '--ciphers': o.ciphers = val(); break;
		case '--exit-on-stdin-eof': o.stdinEof = true; break;
		case '--verbose': o.verbose = true; break;
		case '-h': case '--help': usage(); break;
		default: usage(`unknown argument ${a}`);
		}
	}
	if (!['self', 'expired', 'ca'].includes(o.certMode))
		usage(`bad --cert-mode ${o.certMode}`);
	if (!/^(IP|DNS):[A-Za-z0-9.:*-]+(,(IP|DNS):[A-Za-z0-9.:*-]+)*$/.test(o.san))
		usage(`bad --san ${o.san}`);
	for (const p of [o.port, o.controlPort])
		if (!Number.isInteger(p) || p < 0 || p > 65535)
			usage('bad port');
	return o;
}

/* ---------- certificates (openssl command line) ---------- */

const opensslCnf = (san) => `
[req]
distinguished_name = dn
prompt = no
[dn]
CN = localhost
[self]
subjectAltName = ${san}
subjectKeyIdentifier = hash
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = ${san}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[ca]
default_ca = CA_default
[CA_default]
dir = .
database = ./index.txt
new_certs_dir = .
serial = ./serial
default_md = sha256
policy = pol
unique_subject = no
email_in_dn = no
[pol]
commonName = supplied
`;

function openssl(args, cwd) {
	try {
		execFileSync('openssl', args, { cwd,
		    stdio: ['ignore', 'ignore', 'pipe'] });
	} catch (e) {
		throw new Error(`openssl ${args[0]} failed: ` +
		    String(e.stderr || e.message).trim());
	}
}

/*
 * self: a self-signed certificate valid for ten years; expired: self-signed,
 * valid 2019-02-10 to 2019-05-11 like the one the real Gateway ships
 * (vertx.jks); ca: a CA and a leaf it signed, SAN IP:127.0.0.1, DNS:localhost.
 */
function makeCerts(mode, dir, san) {
	const cnf = path.join(dir, 'openssl.cnf');
	const key = path.join(dir, 'key.pem');
	const cert = path.join(dir, 'cert.pem');
	const csr = path.join(dir, 'req.csr');
	const cfg = ['-config', cnf];
	fs.writeFileSync(cnf, opensslCnf(san));
	if (mode === 'self') {
		openssl(['req', '-x509', ...cfg, '-extensions', 'self',
		    '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
		    '-days', '3650', '-subj', '/CN=localhost'], dir);
		return { key, cert, ca: null };
	}
	if (mode === 'expired') {
		fs.writeFileSync(path.join(dir, 'index.txt'), '');
		fs.writeFileSync(path.join(dir, 'serial'), '1000\n');
		openssl(['req', '-new', ...cfg, '-newkey', 'rsa:2048', '-nodes',
		    '-keyout', key, '-out', csr, '-subj', '/CN=localhost'], dir);
		openssl(['ca', '-batch', ...cfg, '-selfsign', '-keyfile', key,
		    '-in', csr, '-out', cert, '-notext', '-extensions', 'self',
		    '-startdate', '20190210000000Z',
		    '-enddate', '20190511000000Z'], dir);
		return { key, cert, ca: null };
	}
	const caKey = path.join(dir, 'ca.key');
	const ca = path.join(dir, 'ca.pem');
	openssl(['req', '-x509', ...cfg, '-extensions', 'ca_ext',
	    '-newkey', 'rsa:2048', '-nodes', '-keyout', caKey, '-out', ca,
	    '-days', '3650', '-subj', '/CN=gwsim test CA'], dir);
	openssl(['req', '-new', ...cfg, '-newkey', 'rsa:2048', '-nodes',
	    '-keyout', key, '-out', csr, '-subj', '/CN=localhost'], dir);
	openssl(['x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey,
	    '-set_serial', '4096', '-days', '3650', '-sha256',
	    '-extfile', cnf, '-extensions', 'leaf', '-out', cert], dir);
	return { key, cert, ca };
}

/* ---------- state, behaviour, counters ---------- */

const DEFAULT_STATE = {
	session: true,		/* read-only (SSO) session: false = 401 */
	authenticated: true,	/* brokerage session: false = "no bridge" */
	connected: true,
	competing: false,
	message: '',
	reauth_works: true,	/* ssodh/init opens the brokerage session */
	questions: 2,		/* length of the order reply chain (0..2) */
	accounts: ['DU123456'],
	positions: 3,		/* positions in the account, 30 per page */
};

const DEFAULT_BEHAVIOUR = {
	delay_ms: 0,
	silent: false,
	reset_mid_body: false,
	force_status: null,
	force_body: null,	/* body for force_status (object or string) */
	rate_per_s: 10,		/* 0 = no limit */
	close_after_response: false,
	retry_after_s: 60,
	keep_alive_ms: 30000,	/* idle kept-alive connection lifetime */
	window_slack_ms: 50,	/* arrival jitter forgiven by the windows */
	endpoint_limits: false,	/* answer 429 past IBKR's per-endpoint limits */
	paths: null,
	drip_ms: 0,		/* > 0: body in 16 KiB pieces this far apart */
	raw: null,		/* a hostile answer: a RAW_CASES name */
	ws_hb_ms: 10000,	/* system hb period on /v1/api/ws; 0 = none */
	ws_tick_ms: 250,	/* smd tick period per conid; 0 = none */
	ws_tick_slices: 1,	/* > 1: each period's ticks spread over it */
	ws_smd_expire_ms: 600000,	/* smd streams end (IBKR: 10 min) */
	ws_silent: false,	/* upgrade, then say nothing (no IBKR route) */
	ws_stall: 0,		/* > 0: hold every message this many ms */
	ws_drop: false,		/* action: true/"close" ends every socket now */
	ws_big_sor: 0,		/* action: one sor of this many bytes now */
	end_connections: false,	/* action: every TLS connection ended now */
	ws_sts_return: false,	/* also announce regained authentication */
	ws_ping_flood: false,	/* pings without end, nothing read */
	ws_ping_bytes: 125,	/* ws_ping_flood's ping payload (0-125) */
};

const STATE_TYPES = { session: 'boolean', authenticated: 'boolean',
    connected: 'boolean', competing: 'boolean', message: 'string',
    reauth_works: 'boolean', questions: 'integer', accounts: 'array',
    positions: 'integer' };
const BEHAVIOUR_TYPES = { delay_ms: 'integer', silent: 'boolean',
    reset_mid_body: 'boolean', force_status: 'integer|null',
    force_body: 'any', rate_per_s: 'integer', close_after_response: 'boolean',
    retry_after_s: 'integer', keep_alive_ms: 'integer',
    window_slack_ms: 'integer', endpoint_limits: 'boolean',
    paths: 'array|null', drip_ms: 'integer', raw: 'raw|null',
    ws_hb_ms: 'integer', ws_tick_ms: 'integer', ws_tick_slices: 'integer',
    ws_smd_expire_ms: 'integer',
    ws_silent: 'boolean', ws_stall: 'integer', ws_drop: 'boolean|wsdrop',
    ws_big_sor: 'integer', ws_sts_return: 'boolean',
    end_connections: 'boolean', ws_ping_flood: 'boolean',
    ws_ping_bytes: 'integer' };

const clone = (o) => JSON.parse(JSON.stringify(o));

let state = clone(DEFAULT_STATE);
let behaviour = clone(DEFAULT_BEHAVIOUR);
let counters;
let brokerage;		/* per brokerage session: pre-flight, suppression */
let sess;		/* per read-only session: id and cookie */
let window1s = [];	/* times (ms) of the requests admitted in the last 1 s */
let endpointWindows;	/* pacing rule -> times of its requests */
let arrivals = [];	/* every request's stamp in the last 1000 ms */
let inFlight = 0;
let historyInFlight = 0;
const replies = new Map();	/* reply id -> pending order chain */
const cOIDs = new Set();
const placed = [];		/* orders placed: {order_id, acct, order, status} */
let nextOrderId = 1000000001;
const t0 = performance.now();

function resetCounters() {
	counters = { total: 0, by_route: {}, handshakes: 0, resumed: 0,
	    full: 0, connections: 0, rate_limited: 0, orders: [],
	    tls_errors: 0, max_in_flight: 0, history_max_in_flight: 0,
	    history_rejected: 0, pacing_violations: {}, max_per_1000ms: 0,
	    log: [], ws_connections: 0, ws_open: 0, ws_subscriptions: [],
	    ws_smd_active: {}, ws_smd_expired: 0, ws_messages_out: 0,
	    ws_api_cookie: 0, sor_after_force: [], suites: {},
	    ws_pings_out: 0 };
	endpointWindows = new Map();
	arrivals = [];
}

function newSession() {
	sess = { id: crypto.randomBytes(16).toString('hex'),
	    cookie: `${crypto.randomBytes(4).toString('hex')}.` +
	    `${crypto.randomBytes(4).toString('hex')}.${Date.now()}`,
	    start: Date.now() };
}

function newBrokerageSession() {
	brokerage = { preflight: new Map(), suppressed: new Set() };
	replies.clear();
}

function resetAll() {
	state = clone(DEFAULT_STATE);
	behaviour = clone(DEFAULT_BEHAVIOUR);
	window1s = [];
	replies.clear();
	cOIDs.clear();
	placed.length = 0;
	resetCounters();
	newSession();
	newBrokerageSession();
}

function typeOk(v, spec) {
	return spec.split('|').some((t) => {
		switch (t) {
		case 'any': return true;
		case 'null': return v === null;
		case 'boolean': return typeof v === 'boolean';
		case 'string': return typeof v === 'string';
		case 'integer': return Number.isInteger(v) && v >= 0;
		case 'array': return Array.isArray(v);
		case 'raw': return typeof v === 'string' && v in RAW_CASES;
		case 'wsdrop': return v === 'close';
		default: return false;
		}
	});
}

/* Partial merge with type checks; an unknown key is an error, not ignored. */
function merge(target, patch, types) {
	if (patch === null || typeof patch !== 'object' || Array.isArray(patch))
		return 'body must be a JSON object';
	for (const [k, v] of Object.entries(patch)) {
		if (!(k in types))
			return `unknown key: ${k}`;
		if (!typeOk(v, types[k]))
			return `${k} must be ${types[k]}`;
	}
	Object.assign(target, patch);
	return null;
}

function setState(patch) {
	const was = { ...state };
	const err = merge(state, patch, STATE_TYPES);
	if (err)
		return err;
	if (state.session && !was.session)
		newSession();
	if (isAuthed() && !(was.session && was.authenticated))
		newBrokerageSession();
	wsAuthChanged(was.session && was.authenticated);
	return null;
}

const isAuthed = () => state.session && state.authenticated;

/* ---------- helpers ---------- */

const JSON_TYPE = 'application/json;charset=utf-8';

function json(status, obj, headers = {}) {
	return { status, headers: { 'content-type': JSON_TYPE, ...headers },
	    body: Buffer.from(JSON.stringify(obj)) };
}

function parseJson(buf) {
	try {
		return JSON.parse(buf.toString('utf8'));
	} catch {
		return undefined;
	}
}

function authStatus() {
	if (!state.session)
		return { authenticated: false, competing: false,
		    connected: false, message: '', MAC: '98:F2:B3:23:BF:A0',
		    fail: '' };
	return { authenticated: state.authenticated, competing: state.competing,
	    connected: state.connected, message: state.message,
	    MAC: '98:F2:B3:23:BF:A0',
	    serverInfo: { serverName: 'JifN19053',
	    serverVersion: 'Build 10.25.0p, Dec 5, 2023 5:48:12 PM' },
	    hardware_info: '0e7c1ca0|98:F2:B3:23:BF:A0' };
}

function knownConid(sym) {
	const known = { AAPL: 265598, MSFT: 272093, IBM: 8314, SPY: 756733,
	    TSLA: 76792991, AMZN: 3691937, GOOG: 208813720 };
	if (known[sym])
		return known[sym];
	const h = crypto.createHash('sha256').update(sym).digest();
	return 100000 + (h.readUInt32BE(0) % 90000000);
}

const SYMBOLS = { 265598: 'AAPL', 272093: 'MSFT', 8314: 'IBM', 756733: 'SPY',
    76792991: 'TSLA', 3691937: 'AMZN', 208813720: 'GOOG' };

function price(conid) {
	return 50 + (Number(conid) % 400) + (Number(conid) % 97) / 100;
}

function snapshotFields(conid, fields) {
	const last = price(conid);
	const values = { 31: last.toFixed(2), 84: (last - 0.01).toFixed(2),
	    86: (last + 0.01).toFixed(2), 85: '300', 88: '200',
	    55: SYMBOLS[conid] || `SYM${conid}`, 7295: (last - 1).toFixed(2),
	    70: (last + 2).toFixed(2), 71: (last - 2).toFixed(2),
	    82: '+1.00', 83: '0.87', 87: '1.2M', 7059: '100',
	    6509: 'RpB', 6119: 'q0' };
	const out = {};
	for (const f of fields)
		if (values[f] !== undefined)
			out[f] = values[f];
	return out;
}

const QUESTIONS = [
	{ id: 'o163', text: 'The following order "BUY 1 @ LMT" price exceeds ' +
	    'the Percentage constraint of 3%. Are you sure you want to ' +
	    'submit this order?' },
	{ id: 'o354', text: 'You are submitting an order without market ' +
	    'data. We strongly recommend against this as it may result in ' +
	    'erroneous and unexpected trades. Are you sure you want to ' +
	    'submit this order?' },
];

function question(chain) {
	const q = chain.questions.shift();
	const id = crypto.randomUUID();
	replies.set(id, chain);
	return [{ id, message: [q.text], isSuppressed: false,
	    messageIds: [q.id] }];
}

function placeOrders(chain) {
	const out = [];
	for (const order of chain.orders) {
		const order_id = String(nextOrderId++);
		placed.push({ order_id, acct: chain.acct, order,
		    status: 'Submitted' });
		counters.orders.push(order);
		out.push({ order_id, order_status: 'Submitted',
		    encrypt_message: '1' });
	}
	wsOrders(placed.slice(placed.length - chain.orders.length));
	return out;
}

/* ---------- Gateway routes ---------- */

function route(req, url, body) {
	const m = req.method;
	const p = url.pathname.slice(API.length);
	const q = url.searchParams;
	const seg = p.split('/').filter(Boolean);
	const acct0 = state.accounts[0] || 'DU123456';

	if (p === '/iserver/auth/status' && (m === 'GET' || m === 'POST'))
		return json(200, authStatus());
	if (p === '/tickle' && (m === 'GET' || m === 'POST')) {
		const a = authStatus();
		const r = json(200, { session: state.session ? sess.id : '',
		    ssoExpires: state.session ?
		    Math.max(0, 86400000 - (Date.now() - sess.start)) : 0,
		    collission: false, userId: 1,
		    hmds: { error: 'no bridge' },
		    iserver: { authStatus: a } });
		if (state.session)
			r.headers['set-cookie'] = `x-sess-uuid=${sess.cookie}; ` +
			    'Path=/; Secure; HttpOnly';
		return r;
	}
	if (!state.session)
		return json(401, { error: 'not authenticated', statusCode: 401 });

	if ((p === '/iserver/auth/ssodh/init' || p === '/iserver/reauthenticate')
	    && m === 'POST') {
		const b = parseJson(body);
		if (p === '/iserver/auth/ssodh/init' &&
		    !(b && b.publish === true))
			return json(500, { error: 'Internal Server Error',
			    statusCode: 500 });
		if (state.connected && state.reauth_works) {
			if (b && b.compete === true)
				state.competing = false;
			if (!state.authenticated) {
				state.authenticated = true;
				newBrokerageSession();
			}
		}
		if (p === '/iserver/reauthenticate')
			return json(200, { message: 'triggered' });
		return json(200, { ...authStatus(),
		    established: state.authenticated });
	}
	if (p === '/logout' && m === 'POST') {
		state.session = false;
		return json(200, { status: true });
	}
	if (p === '/sso/validate' && m === 'GET')
		return json(200, { USER_ID: 1, USER_NAME: 'gwsim1',
		    RESULT: true, AUTH_TIME: sess.start,
		    EXPIRES: 86400000 - (Date.now() - sess.start),
		    LOGIN_TYPE: 2, PAPER_USER_NAME: 'gwsim1' });

	if (seg[0] === 'iserver' && !state.authenticated)
		return json(400, { error: 'Bad Request: no bridge',
		    statusCode: 400 });

	/* test endpoints: after the session rules, like any other path */
	if (seg[seg.length - 1] === '__echo')
		return { status: 200, headers: { 'content-type':
		    req.headers['content-type'] || 'application/octet-stream' },
		    body };
	if (seg[seg.length - 1] === '__blob') {
		const n = Number(q.get('bytes') || '0');
		if (!Number.isInteger(n) || n < 0)
			return json(400, { error: 'bad bytes' });
		return { status: 200, headers: { 'content-type':
		    'application/octet-stream' }, blob: { n,
		    chunked: q.get('chunked') === '1' } };
	}


	if (m === 'GET' && p === '/iserver/accounts')
		return json(200, { accounts: state.accounts,
		    acctProps: Object.fromEntries(state.accounts.map((a) => [a,
		    { hasChildAccounts: false, supportsCashQty: true,
		    supportsFractions: true }])),
		    aliases: Object.fromEntries(state.accounts.map((a) =>
		    [a, a])), allowFeatures: { showGFIS: true },
		    selectedAccount: acct0, isPaper: true });
	if (m === 'POST' && p === '/iserver/account') {
		const b = parseJson(body) || {};
		return json(200, { set: true, acctId: b.acctId });
	}
	if (m === 'GET' && (p === '/portfolio/accounts' ||
	    p === '/portfolio/subaccounts'))
		return json(200, state.accounts.map((a) => ({ id: a,
		    accountId: a, accountVan: a, accountTitle: 'gwsim paper',
		    displayName: a, accountAlias: null, currency: 'USD',
		    type: 'DEMO', tradingType: 'PMRGN', faclient: false,
		    clearingStatus: 'O', covestor: false, parent: {},
		    desc: a })));
	if (m === 'GET' && seg[0] === 'portfolio' && seg.length === 4 &&
	    seg[2] === 'positions')
		return positions(seg[1], Number(seg[3]));
	if (m === 'GET' && seg[0] === 'portfolio' && seg.length === 3 &&
	    seg[2] === 'summary') {
		const v = (amount) => ({ amount, currency: 'USD',
		    isNull: false, timestamp: Date.now(), value: null,
		    severity: 0 });
		return json(200, { netliquidation: v(100000),
		    totalcashvalue: v(40000), buyingpower: v(400000),
		    availablefunds: v(90000), grosspositionvalue: v(60000),
		    accountcode: { amount: 0, currency: null, isNull: false,
		    timestamp: Date.now(), value: seg[1], severity: 0 } });
	}
	if (m === 'GET' && p === '/iserver/account/orders') {
		wsOrdersRead(q);
		return json(200, { orders: placed.map(orderView),
		    snapshot: true });
	}
	if (m === 'GET' && p === '/iserver/account/trades')
		return json(200, [tradeView(acct0)]);
	if (m === 'GET' && p === '/iserver/account/pnl/partitioned')
		return json(200, { upnl: { [`${acct0}.Core`]: { rowType: 1,
		    dpl: 12.5, nl: 100000, upl: 250, el: 90000, mv: 60000 } } });
	if (m === 'GET' && seg[0] === 'iserver' && seg[1] === 'account' &&
	    seg[2] === 'order' && seg[3] === 'status' && seg.length === 5) {
		const o = placed.find((x) => x.order_id === seg[4]);
		if (!o)
			return json(400, { error: `order ${seg[4]} not found` });
		return json(200, { order_id: Number(o.order_id),
		    conid: o.order.conid, order_status: o.status,
		    side: o.order.side, size: String(o.order.quantity) });
	}
	if (seg[0] === 'iserver' && seg[1] === 'account' && seg.length >= 4 &&
	    seg[3] === 'orders' && m === 'POST')
		return postOrders(seg[2], seg[4], body);
	if (seg[0] === 'iserver' && seg[1] === 'account' && seg.length === 5 &&
	    seg[3] === 'order')
		return orderById(m, seg[2], seg[4], body);
	if (m === 'POST' && seg[0] === 'iserver' && seg[1] === 'reply' &&
	    seg.length === 3)
		return reply(seg[2], body);
	if (m === 'POST' && p === '/iserver/questions/suppress') {
		const b = parseJson(body);
		if (!b || !Array.isArray(b.messageIds))
			return json(400, { error: 'messageIds is required' });
		for (const id of b.messageIds)
			brokerage.suppressed.add(String(id));
		return json(200, { status: 'submitted' });
	}
	if (m === 'POST' && p === '/iserver/questions/suppress/reset') {
		brokerage.suppressed.clear();
		return json(200, { status: 'submitted' });
	}
	if (m === 'GET' && p === '/iserver/marketdata/snapshot')
		return snapshot(q);
	if (m === 'GET' && p === '/iserver/marketdata/history')
		return history(q);
	if (m === 'GET' && p === '/trsrv/stocks') {
		const syms = (q.get('symbols') || '').split(',').filter(Boolean);
		if (syms.length === 0)
			return json(400, { error: 'symbols is required' });
		const out = {};
		for (const s of syms) {
			const u = s.toUpperCase();
			out[u] = [{ name: u === 'AAPL' ? 'APPLE INC' :
			    `${u} CORP`, chineseName: u === 'AAPL' ?
			    '&#x82F9;&#x679C;&#x516C;&#x53F8;' : null,
			    assetClass: 'STK', contracts: [{
			    conid: knownConid(u), exchange: 'NASDAQ',
			    isUS: true }] }];
		}
		return json(200, out);
	}
	return json(404, { error: `no such endpoint: ${m} ${url.pathname}`,
	    statusCode: 404 });
}

function orderView(o) {
	return { acct: o.acct, conid: o.order.conid, orderId:
	    Number(o.order_id), order_ref: o.order.cOID,
	    ticker: SYMBOLS[o.order.conid] || `SYM${o.order.conid}`,
	    side: o.order.side, orderType: o.order.orderType,
	    price: o.order.price, totalSize: o.order.quantity,
	    remainingQuantity: o.order.quantity, filledQuantity: 0,
	    timeInForce: o.order.tif, status: o.status, secType: 'STK' };
}

function tradeView(acct) {
	return { execution_id: '0000e0d5.6576fd38.01.01',
	    symbol: 'AAPL', side: 'B', order_description:
	    'Bot 10 @ 190.00 on ISLAND', trade_time: '20231211-18:00:49',
	    size: 10, price: '190.00', exchange: 'ISLAND',
	    commission: '1.00', net_amount: 1900, account: acct,
	    conid: 265598, sec_type: 'STK' };
}

function positions(acct, page) {
	if (!Number.isInteger(page) || page < 0)
		return json(400, { error: 'bad page' });
	const out = [];
	for (let i = page * 30; i < Math.min(state.positions, page * 30 + 30);
	    i++) {
		const conid = i < 3 ? [265598, 272093, 8314][i] : 1000 + i;
		const px = price(conid);
		const qty = 10 * (i + 1);
		out.push({ acctId: acct, conid, contractDesc:
		    SYMBOLS[conid] || `SYM${conid}`, position: qty,
		    mktPrice: px, mktValue: +(px * qty).toFixed(2),
		    currency: 'USD', avgCost: px - 1, avgPrice: px - 1,
		    realizedPnl: 0, unrealizedPnl: qty, assetClass: 'STK',
		    ticker: SYMBOLS[conid] || `SYM${conid}` });
	}
	return json(200, out);
}

function postOrders(acct, sub, body) {
	const b = parseJson(body);
	if (sub === 'whatif') {
		if (!b || !Array.isArray(b.orders))
			return json(400, { error: 'orders is required' });
		return json(200, { amount: { amount: '1,000.00 USD',
		    commission: '1.00 USD', total: '1,001.00 USD' },
		    equity: { current: '100,000', change: '-1', after: '99,999' },
		    warn: null, error: null });
	}
	if (sub !== undefined)
		return json(404, { error: 'no such endpoint' });
	if (!b || !Array.isArray(b.orders) || b.orders.length === 0 ||
	    !b.orders.every((o) => o && typeof o === 'object'))
		return json(400, { error: 'Bad Request: body must be ' +
		    '{"orders":[...]}' });
	for (const o of b.orders)
		if (o.cOID !== undefined && cOIDs.has(String(o.cOID)))
			return json(400, { error: 'Order couldn\'t be ' +
			    `submitted: Local order ID=${o.cOID} is already ` +
			    'registered.' });
	const chain = { acct, orders: b.orders, cOIDs: [],
	    questions: QUESTIONS.slice(0, state.questions).filter((qq) =>
	    !brokerage.suppressed.has(qq.id)) };
	for (const o of b.orders)
		if (o.cOID !== undefined) {
			cOIDs.add(String(o.cOID));
			chain.cOIDs.push(String(o.cOID));
		}
	if (chain.questions.length === 0)
		return json(200, placeOrders(chain));
	return json(200, question(chain));
}

function reply(id, body) {
	const chain = replies.get(id);
	if (!chain)
		return json(400, { error: `reply id not found: '${id}'` });
	replies.delete(id);
	const b = parseJson(body);
	if (!b || typeof b.confirmed !== 'boolean')
		return json(400, { error: 'confirmed is required' });
	if (!b.confirmed) {
		for (const c of chain.cOIDs)
			cOIDs.delete(c);
		return json(200, { confirmed: false,
		    message: 'Order discarded' });
	}
	if (chain.questions.length > 0)
		return json(200, question(chain));
	return json(200, placeOrders(chain));
}

function orderById(m, acct, id, body) {
	const o = placed.find((x) => x.order_id === id);
	if (m === 'DELETE') {
		if (o) {
			o.status = 'Cancelled';
			wsOrders([o]);
		}
		return json(200, { msg: 'Request was submitted',
		    order_id: Number(id), conid: o ? o.order.conid : -1,
		    account: acct });
	}
	if (m === 'POST') {
		const b = parseJson(body);
		if (!b || typeof b !== 'object' || Array.isArray(b))
			return json(400, { error: 'body must be an order object' });
		if (!o)
			return json(400, { error: `order ${id} not found` });
		o.order = { ...o.order, ...b };
		o.status = 'PreSubmitted';
		wsOrders([o]);
		return json(200, [{ order_id: id, order_status: 'PreSubmitted',
		    encrypt_message: '1' }]);
	}
	return json(405, { error: 'method not allowed' });
}

function snapshot(q) {
	const conids = (q.get('conids') || '').split(',').filter(Boolean);
	if (conids.length === 0)
		return json(400, { error: 'conids is required' });
	const fields = (q.get('fields') || '').split(',').filter(Boolean);
	const out = [];
	for (const c of conids) {
		const conid = Number(c);
		if (!Number.isInteger(conid) || conid <= 0)
			return json(400, { error: `bad conid: ${c}` });
		const pre = brokerage.preflight.get(conid);
		if (!pre) {
			brokerage.preflight.set(conid, new Set(fields));
			out.push({ conid, conidEx: String(conid) });
			continue;
		}
		for (const f of fields)
			pre.add(f);
		out.push({ conid, conidEx: String(conid), _updated: Date.now(),
		    server_id: 'q0', ...snapshotFields(conid, [...pre]) });
	}
	return json(200, out);
}

const BAR_S = { min: 60, h: 3600, d: 86400, w: 604800, m: 2592000, y: 31536000 };

function duration(s, dflt) {
	const m = /^(\d+)\s*(min|mins|h|d|w|m|y)$/i.exec(s || '');
	if (!m)
		return dflt;
	const unit = m[2].toLowerCase().replace(/mins?$/, 'min');
	return Number(m[1]) * BAR_S[unit];
}

function history(q) {
	const conid = Number(q.get('conid'));
	if (!Number.isInteger(conid) || conid <= 0)
		return json(400, { error: 'conid is required' });
	const period = duration(q.get('period'), 86400);
	const bar = duration(q.get('bar'), 60);
	const n = Math.max(1, Math.min(1000, Math.floor(period / bar)));
	const base = price(conid);
	const start = Date.UTC(2024, 0, 2, 14, 30);
	const data = [];
	for (let i = 0; i < n; i++) {
		const o = base + Math.sin(i / 7);
		const c = base + Math.sin((i + 1) / 7);
		data.push({ o: +o.toFixed(2), c: +c.toFixed(2),
		    h: +(Math.max(o, c) + 0.1).toFixed(2),
		    l: +(Math.min(o, c) - 0.1).toFixed(2),
		    v: 1000 + i, t: start + i * bar * 1000 });
	}
	return json(200, { serverId: '20477', symbol: SYMBOLS[conid] ||
	    `SYM${conid}`, text: SYMBOLS[conid] || `SYM${conid}`,
	    priceFactor: 100, startTime: '20240102-14:30:00',
	    timePeriod: q.get('period') || '1d', barLength: bar,
	    mdAvailability: 'S', mktDataDelay: 0, outsideRth: false,
	    volumeFactor: 1, priceDisplayRule: 1, priceDisplayValue: '2',
	    negativeCapable: false, messageVersion: 2, data, points: n,
	    travelTime: 12 });
}

/* ---------- HTTPS front: pacing, framing, behaviours ---------- */

function behaviourApplies(pathname) {
	if (!Array.isArray(behaviour.paths))
		return true;
	const rel = pathname.startsWith(API) ? pathname.slice(API.length) : null;
	return behaviour.paths.some((pre) => typeof pre === 'string' &&
	    (pathname.startsWith(pre) || (rel !== null && rel.startsWith(pre))));
}

/* Insert t into a sorted array (stamps come nearly, not always, in order). */
function insertSorted(times, t) {
	let i = times.length;
	while (i > 0 && times[i - 1] > t)
		i--;
	times.splice(i, 0, t);
}

/*
 * Sliding windows, the strictest reading of IBKR's limits, counted by each
 * request's first-byte stamp: a request is over when the window already
 * holds N requests younger than the window minus window_slack_ms (the
 * slack forgives arrival jitter; 0 is the strict mode: N arrivals in any
 * window of its length make the next one over).
 */
function windowFull(times, n, len_ms, now) {
	const span = Math.max(1, len_ms - behaviour.window_slack_ms);
	while (times.length > 0 && now - times[0] >= span)
		times.shift();
	return times.length >= n;
}

/*
 * Every arrival, admitted or refused, in the last strict 1000 ms: the most
 * ever seen at once is counters.max_per_1000ms, whatever the slack.
 */
function countArrival(now) {
	insertSorted(arrivals, now);
	const last = arrivals[arrivals.length - 1];
	while (arrivals.length > 0 && last - arrivals[0] >= 1000)
		arrivals.shift();
	counters.max_per_1000ms = Math.max(counters.max_per_1000ms,
	    arrivals.length);
}

/* More than rate_per_s admitted requests in any 1 s window: 429. */
function rateLimited(now) {
	if (!behaviour.rate_per_s)
		return false;
	if (windowFull(window1s, behaviour.rate_per_s, 1000, now))
		return true;
	insertSorted(window1s, now);
	return false;
}

/* IBKR's published per-endpoint limits (shared/IBKR.md section 2). */
const PACING = [
	{ m: 'GET', p: '/iserver/marketdata/snapshot', n: 10, ms: 1000 },
	{ m: 'GET', p: '/iserver/scanner/params', n: 1, ms: 900000 },
	{ m: 'POST', p: '/iserver/scanner/run', n: 1, ms: 1000 },
	{ m: 'GET', p: '/iserver/account/trades', n: 1, ms: 5000 },
	{ m: 'GET', p: '/iserver/account/orders', n: 1, ms: 5000 },
	{ m: 'GET', p: '/iserver/account/pnl/partitioned', n: 1, ms: 5000 },
	{ m: 'GET', p: '/portfolio/accounts', n: 1, ms: 5000 },
	{ m: 'GET', p: '/portfolio/subaccounts', n: 1, ms: 5000 },
	{ m: 'POST', p: '/pa/performance', n: 1, ms: 900000 },
	{ m: 'POST', p: '/pa/summary', n: 1, ms: 900000 },
	{ m: 'POST', p: '/pa/transactions', n: 1, ms: 900000 },
	{ m: null, p: '/fyi/', prefix: true, n: 1, ms: 1000 },
	{ m: null, p: '/tickle', n: 1, ms: 1000 },
	{ m: 'GET', p: '/sso/validate', n: 1, ms: 60000 },
];

/*
 * Count (always) and refuse (with endpoint_limits) a request past its
 * endpoint's limit.  Only admitted requests enter the endpoint's window.
 */
function endpointOver(method, pathname, now) {
	if (!pathname.startsWith(`${API}/`))
		return false;
	const rel = pathname.slice(API.length);
	const rule = PACING.find((r) => (r.m === null || r.m === method) &&
	    (r.prefix ? rel.startsWith(r.p) : rel === r.p));
	if (!rule)
		return false;
	const key = `${rule.m || 'ANY'} ${API}${rule.p}`;
	if (!endpointWindows.has(key))
		endpointWindows.set(key, []);
	const times = endpointWindows.get(key);
	if (windowFull(times, rule.n, rule.ms, now)) {
		counters.pacing_violations[key] =
		    (counters.pacing_violations[key] || 0) + 1;
		return behaviour.endpoint_limits;
	}
	insertSorted(times, now);
	return false;
}

const PATTERN = Buffer.alloc(251 * 256);
for (let i = 0; i < PATTERN.length; i++)
	PATTERN[i] = i % 251;

/* Write n pattern bytes with backpressure; done(ok) afterwards. */
function writeBlob(res, n, done) {
	let left = n;
	const pump = () => {
		while (left > 0) {
			if (res.destroyed)
				return done(false);
			const len = Math.min(left, PATTERN.length);
			left -= len;
			if (!res.write(PATTERN.subarray(0, len))) {
				res.once('drain', pump);
				return;
			}
		}
		done(true);
	};
	pump();
}

const DRIP_PIECE = 16384;

/* Write body (a Buffer) or n pattern bytes in 16 KiB pieces, drip_ms apart. */
function writeDrip(res, body, n, ms, done) {
	let off = 0;
	const piece = () => {
		if (res.destroyed)
			return done(false);
		if (off >= n)
			return done(true);
		const len = Math.min(DRIP_PIECE, n - off);
		let chunk;
		if (body)
			chunk = body.subarray(off, off + len);
		else {
			chunk = Buffer.alloc(len);
			for (let i = 0; i < len; i++)
				chunk[i] = (off + i) % 251;
		}
		off += len;
		res.write(chunk);
		if (off >= n)
			return done(true);
		setTimeout(piece, ms);
	};
	piece();
}

function send(req, res, ans, beh, finish) {
	const headers = { ...ans.headers };
	if (beh && behaviour.close_after_response)
		headers.connection = 'close';
	const full = ans.blob ? ans.blob.n : ans.body.length;
	if (ans.blob && ans.blob.chunked)
		headers['transfer-encoding'] = 'chunked';
	else
		headers['content-length'] = String(full);
	res.writeHead(ans.status, headers);
	if (beh && behaviour.reset_mid_body) {
		res.flushHeaders();
		const half = Math.floor(full / 2);
		const kill = () => {
			res.socket && res.socket.destroy();
			finish();
		};
		if (ans.blob)
			return writeBlob(res, half, () => res.write('', kill));
		return res.write(ans.body.subarray(0, half), kill);
	}
	if (beh && behaviour.drip_ms > 0 && req.method !== 'HEAD') {
		res.flushHeaders();
		return writeDrip(res, ans.blob ? null : ans.body, full,
		    behaviour.drip_ms, (ok) => {
			if (ok)
				res.end();
			finish();
		});
	}
	if (ans.blob)
		return writeBlob(res, full, () => { res.end(); finish(); });
	res.end(req.method === 'HEAD' ? undefined : ans.body);
	finish();
}

/*
 * A request is stamped when its first byte arrives: the first data on its
 * connection after the previous request was read (secureConnection puts
 * the stamp there, ahead of the HTTP parser).  The windows count these
 * stamps, as IBKR counts arrivals, not the moment a handler ran.
 */
function onRequest(req, res) {
	const chunks = [];
	const stamp = req.socket.gwsimFirst ?? performance.now();
	req.on('data', (c) => chunks.push(c));
	req.on('error', () => {});
	req.on('end', () => {
		req.socket.gwsimFirst = null;
		handle(req, res, Buffer.concat(chunks), stamp);
	});
}

function handle(req, res, body, stamp) {
	const now = stamp;
	const url = new URL(req.url, 'https://127.0.0.1');
	const key = `${req.method} ${url.pathname}`;
	const entry = { method: req.method, path: url.pathname,
	    query: url.search.slice(1), headers: { ...req.headers },
	    body_len: body.length, t_ms: +(now - t0).toFixed(3),
	    conn: req.socket.gwsimId || 0, status: null };
	counters.total++;
	counters.by_route[key] = (counters.by_route[key] || 0) + 1;
	counters.log.push(entry);
	if (counters.log.length > 1000)
		counters.log.shift();
	inFlight++;
	counters.max_in_flight = Math.max(counters.max_in_flight, inFlight);
	countArrival(now);
	const isHistory = url.pathname === `${API}/iserver/marketdata/history`;
	let done = false;
	const finish = () => {
		if (done)
			return;
		done = true;
		inFlight--;
		if (isHistory)
			historyInFlight--;
	};
	res.on('close', finish);
	if (isHistory)
		historyInFlight++;

	let ans;
	const hasLen = req.headers['content-length'] !== undefined ||
	    req.headers['transfer-encoding'] !== undefined;
	if (rateLimited(now) || endpointOver(req.method, url.pathname, now)) {
		counters.rate_limited++;
		ans = json(429, { error: 'Too Many Requests', statusCode: 429 },
		    { 'retry-after': String(behaviour.retry_after_s) });
	} else if ((req.method === 'POST' || req.method === 'PUT') && !hasLen) {
		ans = json(411, { error: 'Length Required', statusCode: 411 });
	} else if (!url.pathname.startsWith(`${API}/`)) {
		ans = json(404, { error: `no such endpoint: ${url.pathname}`,
		    statusCode: 404 });
	} else if (isHistory && historyInFlight > 5) {
		counters.history_rejected++;
		ans = json(429, { error: 'Too many requests', statusCode: 429 });
	} else {
		ans = route(req, url, body);
	}
	if (isHistory)
		counters.history_max_in_flight = Math.max(
		    counters.history_max_in_flight, historyInFlight);

	const beh = behaviourApplies(url.pathname);
	if (beh && behaviour.force_status !== null) {
		const fb = behaviour.force_body;
		ans = typeof fb === 'string' ?
		    { status: behaviour.force_status, headers: { 'content-type':
		    'text/plain' }, body: Buffer.from(fb) } :
		    json(behaviour.force_status, fb !== null && fb !== undefined ?
		    fb : { error: http.STATUS_CODES[behaviour.force_status] ||
		    'forced', statusCode: behaviour.force_status });
		if (behaviour.force_status === 429)
			ans.headers['retry-after'] = String(behaviour.retry_after_s);
	}
	entry.status = ans.status;
	if (beh && behaviour.raw !== null) {
		entry.status = `raw ${behaviour.raw}`;
		return sendRaw(req, behaviour.raw, finish);
	}
	if (beh && behaviour.silent)
		return;		/* accepted, never answered */
	const go = () => {
		if (res.destroyed || req.socket.destroyed)
			return finish();
		send(req, res, ans, beh, finish);
	};
	if (beh && behaviour.delay_ms > 0)
		setTimeout(go, behaviour.delay_ms);
	else
		go();
}

/* ---------- hostile answers ---------- */

/*
 * Bytes a broken (or merely unusual) Gateway might send, written straight
 * to the TLS socket past Node's HTTP writer.  close: end the connection
 * after them; otherwise it stays open, so a client that reuses it after a
 * broken answer shows up in the log as a later request on the same conn.
 */
const RAW_BODY = '{"raw":true}';
const RAW_OK = 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n';
const RAW_CASES = {
	/* RFC 9112 6.3: a message with both is an attack or an error */
	cl_te: { close: false, bytes: () => RAW_OK + 'Content-Length: 5\r\n' +
	    'Transfer-Encoding: chunked\r\n\r\nc\r\n' + RAW_BODY +
	    '\r\n0\r\n\r\n' },
	short_body: { close: true, bytes: () => RAW_OK +
	    'Content-Length: 100\r\n\r\n' + RAW_BODY },
	/* legal: 1xx interim answers, then the final one */
	interim: { close: false, bytes: () => 'HTTP/1.1 100 Continue\r\n\r\n' +
	    'HTTP/1.1 103 Early Hints\r\nLink: </x.css>; rel=preload\r\n\r\n' +
	    RAW_OK + `Content-Length: ${RAW_BODY.length}\r\n\r\n` + RAW_BODY },
	/* legal in HTTP/1.1: no length, the body ends with the connection */
	close_delimited: { close: true, bytes: () => RAW_OK + '\r\n' +
	    RAW_BODY },
	no_colon: { close: false, bytes: () => RAW_OK +
	    'X-Broken header line\r\n' +
	    `Content-Length: ${RAW_BODY.length}\r\n\r\n` + RAW_BODY },
	huge_header: { close: false, bytes: () => RAW_OK + 'X-Big: ' +
	    'a'.repeat(10 * 1024 * 1024) + '\r\n' +
	    `Content-Length: ${RAW_BODY.length}\r\n\r\n` + RAW_BODY },
};

function sendRaw(req, name, finish) {
	const c = RAW_CASES[name];
	const sock = req.socket;
	sock.on('error', () => {});	/* the client may hang up mid-way */
	sock.write(c.bytes(), () => {
		if (c.close)
			sock.end();
		finish();
	});
}

/* ---------- WebSocket (/v1/api/ws) ---------- */

/*
 * The Gateway's streaming socket (shared/IBKR.md "WebSocket").  The npm
 * package ws (tests/package.json, installed by make deps) does the framing;
 * without it the rest of the simulator still works and an upgrade is 501,
 * so suites that never stream do not depend on it.
 */
let WebSocketServer = null;
try {
	({ WebSocketServer } = require('ws'));
} catch {
	/* reported by wsUpgrade */
}

const WS_USER = 'gwsim1';
const WS_TIME_FIELD = '9999';	/* gwsim's own: send time, epoch ms */
const WS_MAX_SMH = 5;		/* history streams at once */
const WS_MAX_LINES = 100;	/* market data lines per socket */
const WS_MAX_HELD = 100000;	/* messages held per socket by ws_stall */
const WS_FLOOD_PINGS = 1000;	/* ws_ping_flood: per socket and turn */
const WS_FLOOD_QUEUED = 1 << 20;	/* bytes gwsim itself holds, at most */
const WS_FLOOD_PING = Buffer.alloc(125, 'p');	/* the largest ping */
const wsConns = new Set();
let wss = null;
let wsSeq = 0;
let wsServerId = 20000;
let wsSorForce = false;	/* GET orders?force=true since the last sor */
let wsSorPaused = false;	/* GET orders with filters stops sor */
let wsStallUntil = 0;
let wsSecN = 0;
const wsSlice = { n: 1, ms: 0, start: 0, next: 0 };	/* ws_tick_slices */
const wsTimers = { hb: null, tick: null, sec: null, stall: null,
    flood: null };

/* Whether the upgrade carries api={"session":"<this session's id>"}. */
function wsApiCookie(header) {
	for (const part of (header || '').split(';')) {
		const eq = part.indexOf('=');
		if (eq < 0 || part.slice(0, eq).trim() !== 'api')
			continue;
		try {
			const o = JSON.parse(part.slice(eq + 1).trim());
			if (o && o.session === sess.id)
				return true;
		} catch { /* not the api cookie's JSON */ }
	}
	return false;
}

/* The jar's x-sess-uuid cookie, or IBind's api={"session":"<id>"}. */
function wsCookieOk(header) {
	if (!header || !state.session)
		return false;
	for (const part of header.split(';')) {
		const eq = part.indexOf('=');
		if (eq < 0)
			continue;
		const name = part.slice(0, eq).trim();
		let v = part.slice(eq + 1).trim();
		if (name === 'x-sess-uuid' && v === sess.cookie)
			return true;
		if (name !== 'api')
			continue;
		try {
			v = decodeURIComponent(v);
		} catch { /* taken as it is */ }
		try {
			const o = JSON.parse(v);
			if (o && o.session === sess.id)
				return true;
		} catch { /* not the api cookie's JSON */ }
	}
	return false;
}

function wsUpgrade(req, socket, head) {
	const url = new URL(req.url, 'https://127.0.0.1');
	const entry = { method: req.method, path: url.pathname,
	    query: url.search.slice(1), headers: { ...req.headers },
	    body_len: 0, t_ms: +(performance.now() - t0).toFixed(3),
	    conn: socket.gwsimId || 0, status: 101 };
	const key = `${req.method} ${url.pathname}`;
	counters.total++;
	counters.by_route[key] = (counters.by_route[key] || 0) + 1;
	counters.log.push(entry);
	if (counters.log.length > 1000)
		counters.log.shift();
	socket.on('error', () => {});
	const refuse = (status, obj) => {
		const body = JSON.stringify({ ...obj, statusCode: status });
		entry.status = status;
		socket.end(`HTTP/1.1 ${status} ` +
		    `${http.STATUS_CODES[status]}\r\n` +
		    `Content-Type: ${JSON_TYPE}\r\n` +
		    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
		    'Connection: close\r\n\r\n' + body);
	};
	if (url.pathname !== `${API}/ws`)
		return refuse(404, { error: `no such endpoint: ${key}` });
	if (!wss)
		return refuse(501, { error: 'gwsim: the npm package ws is ' +
		    'missing (make deps)' });
	if (!state.session)
		return refuse(401, { error: 'not authenticated' });
	wss.handleUpgrade(req, socket, head, (ws) => wsOpen(ws, req));
}

function wsOpen(ws, req) {
	const c = { id: ++wsSeq, ws, authed: false,
	    silent: behaviour.ws_silent, smd: new Map(), sor: false,
	    str: false, spl: false, ssd: new Set(), sld: new Set(),
	    smh: new Map(), held: [] };
	wsConns.add(c);
	counters.ws_connections++;
	ws.on('message', (data) => wsMessage(c, data.toString()));
	ws.on('close', () => wsConns.delete(c));
	ws.on('error', () => {});
	if (wsApiCookie(req.headers.cookie))
		counters.ws_api_cookie++;
	if (wsCookieOk(req.headers.cookie))
		wsHello(c);
	else
		wsOut(c, { message: 'waiting for session' });
}

function wsSts() {
	return { topic: 'sts', args: { authenticated: isAuthed(),
	    competing: state.competing, message: state.message, fail: '',
	    serverName: 'JifN19053', serverVersion:
	    'Build 10.25.0p, Dec 5, 2023 5:48:12 PM', username: WS_USER } };
}

function wsHello(c) {
	c.authed = true;
	wsOut(c, { topic: 'system', success: WS_USER, isFT: false,
	    isPaper: true });
	wsOut(c, wsSts());
}

/*
 * Every message leaves here: nothing from a silent socket (or while
 * ws_silent), held while ws_stall lasts.
 */
function wsOut(c, obj) {
	if (c.silent || behaviour.ws_silent || c.ws.readyState !== 1)
		return;
	const s = typeof obj === 'string' ? obj : JSON.stringify(obj);
	if (wsStallUntil > 0) {
		if (c.held.length < WS_MAX_HELD)
			c.held.push(s);
		return;
	}
	c.ws.send(s);
	counters.ws_messages_out++;
}

function wsMessage(c, text) {
	counters.ws_subscriptions.push({ t_ms: +(performance.now() -
	    t0).toFixed(3), conn: c.id, msg: text });
	if (counters.ws_subscriptions.length > 1000)
		counters.ws_subscriptions.shift();
	if (c.silent || behaviour.ws_silent)
		return;
	if (!c.authed) {
		let b;
		try {
			b = JSON.parse(text);
		} catch { /* anything else waits for the session too */ }
		if (b && typeof b === 'object' && state.session &&
		    b.session === sess.id)
			return wsHello(c);
		return wsOut(c, { message: 'waiting for session' });
	}
	if (text.startsWith('{'))
		return;		/* {"session":...} again */
	wsTopic(c, text);
}

/* "ID+{json}" or "ID": the id and the parsed arguments, or null. */
function wsArgs(rest) {
	const p = rest.indexOf('+');
	const id = p < 0 ? rest : rest.slice(0, p);
	const js = p < 0 ? '' : rest.slice(p + 1);
	let args = {};
	if (js !== '')
		try {
			args = JSON.parse(js);
		} catch {
			return null;
		}
	if (args === null || typeof args !== 'object')
		return null;
	return { id, args };
}

function wsTopic(c, text) {
	const plus = text.indexOf('+');
	const topic = plus < 0 ? text : text.slice(0, plus);
	const a = wsArgs(plus < 0 ? '' : text.slice(plus + 1));
	if (topic === 'tic')
		return wsOut(c, { topic: 'tic', alive: true,
		    lastAccessed: Date.now() });
	if (text === 'ech+hb')
		return wsOut(c, { topic: 'ech+hb', alive: true });
	if (a === null)
		return wsOut(c, { topic: 'system', error:
		    `malformed message: ${text.slice(0, 100)}` });
	/* no brokerage session: subscriptions are logged, not served */
	if (!isAuthed())
		return;
	switch (topic) {
	case 'smd': return wsSmd(c, a);
	case 'umd': return wsUmd(c, a);
	case 'sor': return wsSor(c);
	case 'uor': c.sor = false; return;
	case 'str':
		c.str = true;
		return wsOut(c, { topic: 'str',
		    args: [tradeView(state.accounts[0] || 'DU123456')] });
	case 'utr': c.str = false; return;
	case 'spl':
		c.spl = true;
		return wsOut(c, wsPnl());
	case 'upl': c.spl = false; return;
	case 'ssd': case 'sld': return wsAcct(c, topic, a.id, true);
	case 'usd': case 'uld': return wsAcct(c, topic, a.id, false);
	case 'smh': return wsSmh(c, a);
	case 'umh': return wsUmh(c, a.id);
	default:
		return wsOut(c, { topic: 'system',
		    error: `unknown topic: ${topic.slice(0, 100)}` });
	}
}

/* A second smd for a conid adds fields; its next message carries them. */
function wsSmd(c, a) {
	const conid = Number(a.id.split('@')[0]);
	const fields = a.args.fields;
	const t = `smd+${a.id}`;
	if (!Number.isInteger(conid) || conid <= 0)
		return wsOut(c, { topic: t, error: `bad conid: ${a.id}` });
	if (!Array.isArray(fields) || fields.length === 0)
		return wsOut(c, { topic: t, error: 'fields required' });
	let s = c.smd.get(conid);
	if (!s) {
		if (c.smd.size >= WS_MAX_LINES)
			return wsOut(c, { topic: t, error:
			    `market data lines exhausted (${WS_MAX_LINES})` });
		s = { key: a.id, fields: new Set(), sent: new Map(), n: 0,
		    base: price(conid), since: 0 };
		c.smd.set(conid, s);
	}
	for (const f of fields)
		s.fields.add(String(f));
	s.since = Date.now();		/* a resubscription renews it */
	wsSmdSend(c, conid, s);
}

function wsUmd(c, a) {
	c.smd.delete(Number(a.id.split('@')[0]));
}

/*
 * Deterministic values for tick n: last moves every tick (bid, ask,
 * change, volume with it), sizes every few ticks, symbol, open, high and
 * low never; unknown fields are "0" once.
 */
function wsField(conid, s, f) {
	const last = s.base + ((s.n * 7) % 50 - 25) / 100;
	switch (f) {
	case '31': return last.toFixed(2);
	case '84': return (last - 0.01).toFixed(2);
	case '86': return (last + 0.01).toFixed(2);
	case '85': return String(100 + (Math.floor(s.n / 3) % 10) * 100);
	case '88': return String(100 + (Math.floor(s.n / 2) % 10) * 100);
	case '7059': return String(100 + (s.n % 5) * 100);
	case '87': return String(1000 + s.n * 100);
	case '82': return (last - s.base + 1).toFixed(2);
	case '83': return ((last - s.base + 1) / s.base * 100).toFixed(2);
	case '55': return SYMBOLS[conid] || `SYM${conid}`;
	case '7295': return (s.base - 1).toFixed(2);
	case '70': return (s.base + 2).toFixed(2);
	case '71': return (s.base - 2).toFixed(2);
	case '6509': return 'RpB';
	case '6119': return 'q0';
	case WS_TIME_FIELD:
		return (performance.timeOrigin + performance.now()).toFixed(3);
	default: return '0';
	}
}

/* Only the fields that changed since this socket last saw them. */
function wsSmdSend(c, conid, s) {
	const m = { server_id: 'q0', conid };
	let any = false;
	for (const f of s.fields) {
		const v = wsField(conid, s, f);
		if (s.sent.get(f) === v)
			continue;
		s.sent.set(f, v);
		m[f] = v;
		any = true;
	}
	if (!any)
		return;
	m._updated = Date.now();
	m.topic = `smd+${s.key}`;
	wsOut(c, m);
}

function wsExpire(c, now) {
	const ms = behaviour.ws_smd_expire_ms;
	if (ms <= 0)
		return;
	for (const [conid, s] of c.smd)
		if (now - s.since >= ms) {
			c.smd.delete(conid);
			counters.ws_smd_expired++;
		}
}

/*
 * One slice of a tick period: the subscriptions at positions slice,
 * slice + n, slice + 2n... of each socket (all of them when n is 1).
 */
function wsTickSlice(slice, n) {
	const now = Date.now();
	for (const c of wsConns) {
		if (!c.authed || c.smd.size === 0)
			continue;
		wsExpire(c, now);
		const sock = c.ws._socket;
		if (sock)
			sock.cork();
		let i = 0;
		for (const [conid, s] of c.smd) {
			if (i++ % n !== slice)
				continue;
			s.n++;
			wsSmdSend(c, conid, s);
		}
		if (sock)
			sock.uncork();
	}
}

/*
 * ws_tick_slices 1: every subscription ticks at once each ws_tick_ms, a
 * burst.  n > 1: the timer runs n times a period, each run sending one
 * slice, so the same ticks leave as a trickle; slices are counted from
 * the clock, not from the timer's runs, so a late run catches up and the
 * rate holds (a run later than a whole period skips what it missed).
 */
function wsTick() {
	if (!isAuthed())
		return;
	if (wsSlice.n <= 1)
		return wsTickSlice(0, 1);
	const due = Math.floor((performance.now() - wsSlice.start) /
	    wsSlice.ms);
	if (due - wsSlice.next > wsSlice.n)
		wsSlice.next = due - wsSlice.n;
	for (; wsSlice.next <= due; wsSlice.next++)
		wsTickSlice(wsSlice.next % wsSlice.n, wsSlice.n);
}

/* The tick timer for ws_tick_ms and ws_tick_slices (slices of >= 1 ms). */
function wsTickTimer() {
	const ms = behaviour.ws_tick_ms;
	wsSlice.n = Math.max(1, Math.min(behaviour.ws_tick_slices, ms));
	wsSlice.ms = ms / wsSlice.n;
	wsSlice.start = performance.now();
	wsSlice.next = 0;
	wsInterval('tick', ms > 0 ? Math.max(1, Math.floor(wsSlice.ms)) : 0,
	    wsTick);
}

function wsSor(c) {
	counters.sor_after_force.push(wsSorForce);
	wsSorForce = false;
	c.sor = true;
	if (placed.length > 0 && !wsSorPaused)
		wsOut(c, { topic: 'sor', args: placed.map(orderView) });
}

/* Orders placed or changed through REST, to every sor subscriber. */
function wsOrders(list) {
	if (wsSorPaused || list.length === 0)
		return;
	for (const c of wsConns)
		if (c.authed && c.sor)
			wsOut(c, { topic: 'sor', args: list.map(orderView) });
}

/* IBKR.md: filters stop later sor updates until a call with force=true. */
function wsOrdersRead(q) {
	if (q.get('force') === 'true') {
		wsSorForce = true;
		wsSorPaused = false;
	} else if (q.has('filters')) {
		wsSorPaused = true;
	}
}

function wsPnl() {
	const acct = state.accounts[0] || 'DU123456';
	const d = (wsSecN % 20) / 4;
	return { topic: 'spl', args: { [`${acct}.Core`]: { rowType: 1,
	    dpl: 12.5 + d, nl: 100000 + d, upl: 250 + d, el: 90000,
	    mv: 60000 + d } } };
}

function wsAcctMsg(topic, acct) {
	const now = Date.now();
	if (topic === 'ssd')
		return { topic: `ssd+${acct}`, result: [
		    { key: 'NetLiquidation', currency: 'USD', monetaryValue:
		    100000 + (wsSecN % 10), severity: 0, timestamp: now },
		    { key: 'BuyingPower', currency: 'USD', monetaryValue:
		    400000, severity: 0, timestamp: now }] };
	return { topic: `sld+${acct}`, result: [{ acctCode: acct,
	    key: 'LedgerListBASE', currency: 'BASE', cashbalance: 40000,
	    netliquidationvalue: 100000 + (wsSecN % 10),
	    stockmarketvalue: 60000, timestamp: Math.floor(now / 1000) }] };
}

function wsAcct(c, topic, acct, on) {
	const kind = topic === 'ssd' || topic === 'usd' ? 'ssd' : 'sld';
	const set = c[kind];
	if (!on) {
		set.delete(acct);
		return wsOut(c, { topic: `${topic}+${acct}`, result: kind ===
		    'ssd' ? 'unsubscribed from summary' :
		    'unsubscribed from ledger' });
	}
	if (!state.accounts.includes(acct))
		return wsOut(c, { topic: `${topic}+${acct}`,
		    error: `account not found: ${acct}` });
	set.add(acct);
	wsOut(c, wsAcctMsg(kind, acct));
}

function wsSmh(c, a) {
	const conid = Number(a.id.split('@')[0]);
	const t = `smh+${a.id}`;
	if (!Number.isInteger(conid) || conid <= 0)
		return wsOut(c, { topic: t, error: `bad conid: ${a.id}` });
	let n = 0;
	for (const x of wsConns)
		n += x.smh.size;
	if (n >= WS_MAX_SMH)
		return wsOut(c, { topic: t, error: 'too many historical data ' +
		    `subscriptions (at most ${WS_MAX_SMH})` });
	const id = String(++wsServerId);
	c.smh.set(id, { conid, key: a.id });
	const q = new URLSearchParams({ conid: String(conid),
	    period: String(a.args.period || '1h'),
	    bar: String(a.args.bar || '5min') });
	const h = JSON.parse(history(q).body);
	wsOut(c, { ...h, serverId: id, topic: t });
}

function wsUmh(c, id) {
	if (!c.smh.delete(id))
		wsOut(c, { topic: `umh+${id}`,
		    error: `no such server id: ${id}` });
}

/* Once a second: P&L, summary, ledger, a bar per history stream, expiry. */
function wsSecond() {
	wsSecN++;
	const now = Date.now();
	for (const c of wsConns) {
		if (!c.authed)
			continue;
		wsExpire(c, now);
		if (!isAuthed())
			continue;
		if (c.spl)
			wsOut(c, wsPnl());
		for (const acct of c.ssd)
			wsOut(c, wsAcctMsg('ssd', acct));
		for (const acct of c.sld)
			wsOut(c, wsAcctMsg('sld', acct));
		for (const [id, h] of c.smh) {
			const px = price(h.conid) + Math.sin(wsSecN / 7);
			wsOut(c, { topic: `smh+${h.key}`, serverId: id,
			    symbol: SYMBOLS[h.conid] || `SYM${h.conid}`,
			    data: [{ o: +px.toFixed(2), c: +px.toFixed(2),
			    h: +(px + 0.1).toFixed(2),
			    l: +(px - 0.1).toFixed(2), v: 1000 + wsSecN,
			    t: now }], points: 1 });
		}
	}
}

function wsHeartbeat() {
	for (const c of wsConns)
		if (c.authed)
			wsOut(c, { topic: 'system', hb: Date.now() });
}

/*
 * Authentication lost: told on every socket, and the socket's
 * subscriptions are gone (IBind issue 25: a client must reconnect and
 * resubscribe).  Regained: IBKR says nothing on the socket, unless
 * ws_sts_return asks for the sts the docs describe.
 */
function wsAuthChanged(was) {
	const now = isAuthed();
	if (now === was)
		return;
	if (now && !behaviour.ws_sts_return)
		return;
	for (const c of wsConns) {
		if (!c.authed)
			continue;
		if (!now) {
			c.smd.clear();
			c.smh.clear();
			c.ssd.clear();
			c.sld.clear();
			c.sor = c.str = c.spl = false;
		}
		wsOut(c, wsSts());
	}
}

function wsFlushHeld() {
	wsStallUntil = 0;
	behaviour.ws_stall = 0;
	wsTimers.stall = null;
	for (const c of wsConns) {
		const held = c.held;
		c.held = [];
		for (const s of held)
			wsOut(c, s);
	}
}

function wsInterval(name, ms, fn) {
	if (wsTimers[name])
		clearInterval(wsTimers[name]);
	wsTimers[name] = ms > 0 ? setInterval(fn, ms) : null;
	if (wsTimers[name])
		wsTimers[name].unref();
}

/*
 * ws_big_sor: one sor message of about n bytes (an order whose order_ref
 * is padded) to every sor subscriber, as a long first list of orders
 * would be; for a client that takes a big message slowly.
 */
function wsBigSor(n) {
	const o = { acct: state.accounts[0] || 'DU123456', conid: 265598,
	    orderId: 1, order_ref: '', ticker: 'AAPL', side: 'BUY',
	    orderType: 'LMT', price: 100, totalSize: 1, remainingQuantity: 1,
	    filledQuantity: 0, timeInForce: 'DAY', status: 'Submitted',
	    secType: 'STK' };
	const base = JSON.stringify({ topic: 'sor', args: [o] }).length;
	o.order_ref = 'x'.repeat(Math.max(0, n - base));
	const text = JSON.stringify({ topic: 'sor', args: [o] });
	for (const c of wsConns)
		if (c.authed && c.sor)
			wsOut(c, text);
}

/*
 * ws_ping_flood: every socket is paused, so what the client sends fills
 * the kernel's buffers and then blocks its writes, and pings go out as
 * fast as the socket takes them.  gwsim holds at most WS_FLOOD_QUEUED
 * bytes of them itself, or it would be the one to grow.  A socket opened
 * during the flood is paused on the next turn.
 */
function wsFlood() {
	for (const c of wsConns) {
		const sock = c.ws._socket;
		if (!sock || c.ws.readyState !== 1)
			continue;
		sock.pause();
		c.flooded = true;
		sock.cork();
		for (let i = 0; i < WS_FLOOD_PINGS &&
		    sock.writableLength < WS_FLOOD_QUEUED; i++) {
			c.ws.ping(WS_FLOOD_PING.subarray(0,
			    Math.min(125, behaviour.ws_ping_bytes)));
			counters.ws_pings_out++;
		}
		sock.uncork();
	}
}

function wsFloodSet() {
	wsInterval('flood', behaviour.ws_ping_flood ? 1 : 0, wsFlood);
	if (behaviour.ws_ping_flood)
		return;
	for (const c of wsConns)
		if (c.flooded && c.ws._socket) {
			c.flooded = false;
			c.ws._socket.resume();
		}
}

/* A /behaviour patch (null: everything was reset). */
function wsBehaviour(patch) {
	const p = patch || { ws_hb_ms: 0, ws_tick_ms: 0, ws_stall: 0,
	    ws_ping_flood: false };
	if ('ws_hb_ms' in p)
		wsInterval('hb', behaviour.ws_hb_ms, wsHeartbeat);
	if ('ws_tick_ms' in p || 'ws_tick_slices' in p)
		wsTickTimer();
	if ('ws_ping_flood' in p)
		wsFloodSet();
	if (!wsTimers.sec)
		wsInterval('sec', 1000, wsSecond);
	if ('ws_stall' in p) {
		if (wsTimers.stall)
			clearTimeout(wsTimers.stall);
		wsTimers.stall = null;
		if (behaviour.ws_stall > 0) {
			wsStallUntil = Date.now() + behaviour.ws_stall;
			wsTimers.stall = setTimeout(wsFlushHeld,
			    behaviour.ws_stall);
		} else if (wsStallUntil > 0) {
			wsFlushHeld();
		}
	}
	if (p.ws_drop) {
		for (const c of wsConns)
			if (p.ws_drop === 'close')
				c.ws.close(1011, 'gwsim ws_drop');
			else
				c.ws.terminate();
		behaviour.ws_drop = false;
	}
	if (p.ws_big_sor > 0)
		wsBigSor(p.ws_big_sor);
	behaviour.ws_big_sor = 0;
	if (!patch) {
		wsSorForce = false;
		wsSorPaused = false;
	}
}

/* The counters, with the live parts filled in. */
function wsCounters() {
	const active = {};
	for (const c of wsConns)
		for (const [conid, s] of c.smd) {
			const u = new Set(active[conid] || []);
			for (const f of s.fields)
				u.add(f);
			active[conid] = [...u].sort((x, y) => x - y);
		}
	counters.ws_smd_active = active;
	counters.ws_open = wsConns.size;
	/* field 9999's clock and CLOCK_MONOTONIC, read together */
	counters.ws_clock = { epoch_ms: performance.timeOrigin +
	    performance.now(), monotonic_ms: Number(process.hrtime.bigint()) /
	    1e6 };
	return counters;
}

/* ---------- control server ---------- */

function controlRequest(req, res) {
	const chunks = [];
	req.on('data', (c) => chunks.push(c));
	req.on('end', () => {
		const b = Buffer.concat(chunks);
		const reply = (status, obj) => {
			const body = JSON.stringify(obj);
			res.writeHead(status, { 'content-type': 'application/json',
			    'content-length': Buffer.byteLength(body) });
			res.end(body);
		};
		const patch = () => {
			const v = b.length ? parseJson(b) : {};
			return v === undefined ? null : v;
		};
		const url = new URL(req.url, 'http://127.0.0.1');
		const r = `${req.method} ${url.pathname}`;
		let err;
		switch (r) {
		case 'GET /state':
			return reply(200, state);
		case 'POST /state':
			err = setState(patch());
			return err ? reply(400, { error: err }) : reply(200, state);
		case 'GET /behaviour':
			return reply(200, behaviour);
		case 'POST /behaviour':
			err = merge(behaviour, patch(), BEHAVIOUR_TYPES);
			if (!err) {
				gw.keepAliveTimeout = behaviour.keep_alive_ms;
				wsBehaviour(patch());
				endConnections();
			}
			return err ? reply(400, { error: err }) :
			    reply(200, behaviour);
		case 'GET /counters':
			return reply(200, wsCounters());
		case 'POST /counters/reset':
			resetCounters();
			return reply(200, wsCounters());
		case 'POST /reset':
			resetAll();
			gw.keepAliveTimeout = behaviour.keep_alive_ms;
			wsBehaviour(null);
			return reply(200, { state, behaviour });
		case 'GET /health':
			return reply(200, { ok: true });
		default:
			return reply(404, { error: `no such control endpoint: ${r}` });
		}
	});
}

/* ---------- start-up ---------- */

const opts = parseArgs(process.argv.slice(2));
let ownDir = false;
let dir = opts.dir;
if (!dir) {
	dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gwsim-'));
	ownDir = true;
} else {
	fs.mkdirSync(dir, { recursive: true });
}
const cleanupDir = () => {
	if (ownDir) {
		try {
			fs.rmSync(dir, { recursive: true, force: true });
		} catch { /* exiting anyway */ }
		ownDir = false;
	}
};
process.on('exit', cleanupDir);

/*
 * --cert-dir: the certificate outlives the simulator, so a restart keeps
 * the fingerprint (the pin stays valid) unless the folder is emptied.
 */
function keptCerts(cdir, mode, san) {
	fs.mkdirSync(cdir, { recursive: true, mode: 0o700 });
	const files = { key: path.join(cdir, 'key.pem'),
	    cert: path.join(cdir, 'cert.pem'),
	    ca: mode === 'ca' ? path.join(cdir, 'ca.pem') : null };
	if (Object.values(files).every((f) => f === null || fs.existsSync(f)))
		return files;
	return makeCerts(mode, cdir, san);
}

let certs;
try {
	certs = opts.certDir ? keptCerts(opts.certDir, opts.certMode, opts.san) :
	    makeCerts(opts.certMode, dir, opts.san);
} catch (e) {
	process.stderr.write(`gwsim: ${e.message}\n`);
	process.exit(1);
}
const certPem = fs.readFileSync(certs.cert);
const fingerprint = new crypto.X509Certificate(certPem).fingerprint256;

resetAll();

const sessionCache = new Map();
let connSeq = 0;
const sockets = new Set();
const gw = https.createServer({
	key: fs.readFileSync(certs.key),
	cert: certPem,
	sessionTimeout: 3600,
	secureOptions: opts.tickets ? 0 : crypto.constants.SSL_OP_NO_TICKET,
	/* --ciphers: OpenSSL's list, in the server's order of preference */
	...(opts.ciphers ? { ciphers: opts.ciphers, honorCipherOrder: true } :
	    {}),
}, onRequest);
gw.keepAliveTimeout = behaviour.keep_alive_ms;
gw.on('connection', (s) => {
	counters.connections++;
	sockets.add(s);
	s.on('close', () => sockets.delete(s));
});
gw.on('secureConnection', (s) => {
	s.gwsimId = ++connSeq;
	s.gwsimFirst = null;
	s.prependListener('data', () => {
		if (s.gwsimFirst === null)
			s.gwsimFirst = performance.now();
	});
	counters.handshakes++;
	const suite = s.getCipher().name;
	counters.suites[suite] = (counters.suites[suite] || 0) + 1;
	if (s.isSessionReused())
		counters.resumed++;
	else
		counters.full++;
});
gw.on('tlsClientError', () => { counters.tls_errors++; });
if (WebSocketServer)
	wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
else
	process.stderr.write('gwsim: npm package ws missing (make deps): ' +
	    'no WebSocket\n');
gw.on('upgrade', wsUpgrade);
wsBehaviour(null);
/* Session-id resumption (TLS 1.2 clients without tickets, e.g. mbedTLS). */
gw.on('newSession', (id, data, cb) => {
	if (sessionCache.size > 10000)
		sessionCache.clear();
	sessionCache.set(id.toString('hex'), data);
	cb();
});
gw.on('resumeSession', (id, cb) => {
	cb(null, sessionCache.get(id.toString('hex')) || null);
});

const ctl = http.createServer(controlRequest);

function shutdown() {
	gw.close();
	ctl.close();
	for (const s of sockets)
		s.destroy();
	cleanupDir();
	process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
if (opts.stdinEof) {
	process.stdin.on('end', shutdown);
	process.stdin.on('error', shutdown);
	process.stdin.resume();
}

gw.listen(opts.port, '127.0.0.1', () => {
	ctl.listen(opts.controlPort, '127.0.0.1', () => {
		process.stdout.write(JSON.stringify({ port: gw.address().port,
		    control: ctl.address().port, pid: process.pid, fingerprint,
		    cert: certs.cert, ca_file: certs.ca }) + '\n');
		if (opts.verbose)
			process.stderr.write(`gwsim: ready in ${dir}\n`);
	});
});
