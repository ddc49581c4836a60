/*
 * brokerd migrate-env: a bridge-era /opt/ibkr-bridge/.env becomes a key
 * file and brokerd.yaml lines that `brokerd -t` accepts; on them a real
 * brokerd in front of the Gateway simulator serves the Next.js example's
 * status handler, configured by the app's unchanged .env.production
 * (IBKR_BRIDGE_URL, IBKR_BRIDGE_KEY), the bridge-era JSON.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startGwsim, startBrokerd, brokerdBuilt, BROKERD } from '../lib/harness.mjs';
import { Bridge } from '../../clients/node/index.js';
import { createHandlers } from '../../clients/node/examples/nextjs/src/lib/ibkr-handlers.js';

const skip = brokerdBuilt() ? false : 'build/brokerd is not built';

/* A loopback port free now: the bridge-era URL names a fixed port. */
function freePort() {
	return new Promise((resolve, reject) => {
		const s = net.createServer();
		s.once('error', reject);
		s.listen(0, '127.0.0.1', () => {
			const { port } = s.address();
			s.close(() => resolve(port));
		});
	});
}

function brokerd(args) {
	const env = {};
	for (const [k, v] of Object.entries(process.env))
		if (!/^(IBKR_|BROKERD_|NOTIFY_SOCKET$|LISTEN_)/.test(k))
			env[k] = v;
	return spawnSync(BROKERD, args, { env, encoding: 'utf8' });
}

describe('brokerd migrate-env, from bridge.py to brokerd', { skip }, () => {
	let dir;
	let gw;
	let bd;
	let bridge;

	before(async () => {
		dir = fs.mkdtempSync(path.join(os.tmpdir(), 'brokerd-migrate-'));
		gw = await startGwsim();
	});
	after(async () => {
		bridge?.close();
		await bd?.stop();
		await gw?.stop();
		fs.rmSync(dir, { recursive: true, force: true });
	});

	test('the .env becomes a configuration that serves the Next.js app', async () => {
		const key = crypto.randomBytes(32).toString('hex');
		const port = await freePort();
		const envFile = path.join(dir, '.env');
		const appEnv = { IBKR_BRIDGE_URL: `http://127.0.0.1:${port}`, IBKR_BRIDGE_KEY: key };
		fs.writeFileSync(envFile, '# /opt/ibkr-bridge/.env\n' +
		    `IBKR_BRIDGE_URL=${appEnv.IBKR_BRIDGE_URL}\n` +
		    `IBKR_BRIDGE_KEY="${key}"\nLOG_LEVEL=INFO\n`, { mode: 0o600 });
		const keys = path.join(dir, 'keys');
		fs.mkdirSync(keys, { mode: 0o750 });
		const keyFile = path.join(keys, 'bridge');

		const m = brokerd(['migrate-env', envFile, keyFile]);
		assert.equal(m.status, 0, m.stderr);
		assert.match(m.stderr, /wrote the key to .*bridge \(mode 0600/);
		assert.equal(fs.statSync(keyFile).mode & 0o777, 0o600);
		assert.equal(fs.readFileSync(keyFile, 'utf8'), `${key}\n`);
		assert.ok(!m.stdout.includes(key) && !m.stderr.includes(key),
		    'the key is never printed');
		assert.match(m.stdout, new RegExp(`^listen:\\n  tcp: 127\\.0\\.0\\.1:${port}$`, 'm'));
		assert.match(m.stdout, /^  - \{ name: bridge, key_file: .*, scopes: \[read, trade, admin\] \}$/m);

		// brokerd.yaml: the printed lines, this test's socket, the Gateway
		const yaml = m.stdout.replace(/^listen:\n/m,
		    `listen:\n  unix: { path: ${JSON.stringify(path.join(dir, 'brokerd.sock'))} }\n`) +
		    `gateway:\n  url: https://127.0.0.1:${gw.port}\n` +
		    `  tls: { pin_sha256: "${gw.fingerprint}" }\n` +
		    `session:\n  status_file: ${JSON.stringify(path.join(dir, 'status'))}\n` +
		    '  check_interval_s: 1\n';
		const conf = path.join(dir, 'check.yaml');
		fs.writeFileSync(conf, yaml, { mode: 0o600 });
		const t = brokerd(['-t', '-c', conf]);
		assert.equal(t.status, 0, t.stderr);
		assert.match(t.stdout, /brokerd: configuration .*check\.yaml is ok/);

		bd = await startBrokerd({ gwsim: gw, config: yaml });
		// the Next.js app: src/lib/ibkr.ts's Bridge, from .env.production
		bridge = new Bridge({ env: appEnv, timeoutMs: 5000 });
		await bridge.waitForAuth({ timeoutMs: 10000, intervalMs: 100 });
		const h = createHandlers(bridge);
		const r = await h.status(new Request('http://localhost:3000/api/ibkr/status'));
		assert.equal(r.status, 200);
		assert.deepEqual(await r.json(), { ok: true, gateway: { authenticated: true } });
		// and the migrated key opens the keyed routes
		assert.deepEqual((await bridge.accounts()).accounts, ['DU123456']);
	});

	test('an existing key file is checked as brokerd checks it', () => {
		const key = crypto.randomBytes(32).toString('hex');
		const envFile = path.join(dir, '.env.again');
		fs.writeFileSync(envFile, `IBKR_BRIDGE_KEY=${key}\n`, { mode: 0o600 });
		const keyFile = path.join(dir, 'open-key');
		fs.writeFileSync(keyFile, `${key}\n`);
		fs.chmodSync(keyFile, 0o644);

		// the same key, but group and others may read it: brokerd refuses it
		let m = brokerd(['migrate-env', envFile, keyFile]);
		assert.equal(m.status, 1, m.stderr);
		assert.doesNotMatch(m.stderr, /already holds/);
		assert.match(m.stderr, /readable by group or others \(mode 0644\): chmod 600 .*open-key/);
		assert.ok(!m.stdout.includes(key) && !m.stderr.includes(key),
		    'the key is never printed');
		assert.equal(fs.statSync(keyFile).mode & 0o777, 0o644, 'left as it was');

		fs.chmodSync(keyFile, 0o600);
		m = brokerd(['migrate-env', envFile, keyFile]);
		assert.equal(m.status, 0, m.stderr);
		assert.match(m.stderr, /open-key already holds this key/);
	});
});
