// `npm pack` gives an installable tarball: install it into a temporary
// folder (offline: the package has no dependencies) and import it there.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

function npm(args, cwd) {
	return execFileSync("npm", args, { cwd, encoding: "utf8", timeout: 60000,
	    stdio: ["ignore", "pipe", "pipe"],
	    env: { ...process.env, npm_config_update_notifier: "false", npm_config_fund: "false",
	    npm_config_audit: "false" } });
}

test("npm pack produces a tarball that installs and imports", (t) => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bdc-pack-"));
	t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
	const out = JSON.parse(npm(["pack", "--json", "--pack-destination", dir], root));
	const files = out[0].files.map((f) => f.path).sort();
	assert.deepEqual(files, ["README.md", "common.js", "index.d.ts", "index.js", "package.json",
	    "stream.js"]);
	const tgz = path.join(dir, out[0].filename);
	assert.ok(fs.existsSync(tgz));

	const app = path.join(dir, "app");
	fs.mkdirSync(app);
	fs.writeFileSync(path.join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
	npm(["install", "--offline", "--ignore-scripts", "--no-audit", "--no-fund", tgz], app);
	fs.writeFileSync(path.join(app, "main.js"), `
import Bridge, { Bridge as B, BridgeError, BridgeStream, DEFAULT_SOCKET, makeCOID } from "brokerd-client";
const b = new B({ socketPath: "/nonexistent/brokerd.sock" });
let code = null;
try { await b.health({ timeoutMs: 1000 }); } catch (e) { code = e instanceof BridgeError ? e.code : String(e); }
b.close();
console.log(JSON.stringify({ same: Bridge === B, code, cOID: makeCOID().length,
    stream: typeof BridgeStream, socket: DEFAULT_SOCKET }));
`);
	const r = JSON.parse(execFileSync(process.execPath, ["main.js"], { cwd: app, encoding: "utf8", timeout: 10000 }));
	assert.deepEqual(r, { same: true, code: "unreachable", cOID: 35, stream: "function",
	    socket: "/run/brokerd/brokerd.sock" });
	const pkg = JSON.parse(fs.readFileSync(path.join(app, "node_modules", "brokerd-client", "package.json"), "utf8"));
	assert.equal(pkg.types, "./index.d.ts");
	assert.ok(fs.existsSync(path.join(app, "node_modules", "brokerd-client", "index.d.ts")));
	assert.deepEqual(pkg.dependencies ?? {}, {});
});
