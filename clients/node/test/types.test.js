// index.d.ts is kept by hand: check that it names exactly what index.js
// exports and every public Bridge method, and (when typescript is
// installed: `npm ci` in clients/node) that `tsc --noEmit` passes over
// test/usage.ts and the Next.js examples.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import * as mod from "../index.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.dirname(here);
const dts = fs.readFileSync(path.join(root, "index.d.ts"), "utf8");

test("index.d.ts declares every export of index.js and nothing else", () => {
	const declared = new Set([...dts.matchAll(/^export declare (?:const|class|function) (\w+)/gm)].map((m) => m[1]));
	if (/^export default /m.test(dts))
		declared.add("default");
	assert.deepEqual([...declared].sort(), Object.keys(mod).sort());
});

test("index.d.ts declares every public Bridge method", () => {
	const body = dts.slice(dts.indexOf("export declare class Bridge {"));
	const cls = body.slice(0, body.indexOf("\n}"));
	const declared = new Set([...cls.matchAll(/^\t(\w+)(?:<[^>]*>)?\(/gm)].map((m) => m[1]));
	declared.delete("constructor");
	const actual = Object.getOwnPropertyNames(mod.Bridge.prototype)
	    .filter((n) => n !== "constructor" && !n.startsWith("_"));
	assert.deepEqual([...declared].sort(), actual.sort());
});

test("tsc --noEmit over the usage file and the Next.js examples", (t) => {
	const tsc = path.join(root, "node_modules", "typescript", "bin", "tsc");
	if (!fs.existsSync(tsc)) {
		t.skip("typescript not installed (run npm ci in clients/node)");
		return;
	}
	const r = spawnSync(process.execPath, [tsc, "--noEmit", "-p", root], { encoding: "utf8", timeout: 60000 });
	assert.equal(r.status, 0, r.stdout + r.stderr);
});
