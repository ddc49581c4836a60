// brokerd-client: what the REST client (index.js) and the streaming client
// (stream.js) share: the one error class, and the decoding of brokerd's
// answers into it.

/**
 * Every failure of this client. `status` is the HTTP status, or 0 when no
 * answer came (codes `timeout`, `unreachable`, `aborted`). `code` is
 * brokerd's error code (`rate_limited`, `not_authenticated`, ...), or
 * `gateway_error` when the Gateway's own error came through, or one of the
 * client's codes (`timeout`, `unreachable`, `aborted`, `bad_response`,
 * `order_not_confirmed`, `order_rejected`, `too_many_questions`).
 */
export class BridgeError extends Error {
	/**
	 * @param {string} message
	 * @param {{status?: number, code: string, body?: unknown,
	 *   retryAfterS?: number|null, question?: object, cOID?: string,
	 *   cause?: unknown}} info
	 */
	constructor(message, info) {
		super(message, info.cause === undefined ? undefined : { cause: info.cause });
		this.name = "BridgeError";
		/** @type {number} */
		this.status = info.status ?? 0;
		/** @type {string} */
		this.code = info.code;
		/** @type {unknown} */
		this.body = info.body ?? null;
		/** @type {number|null} seconds from Retry-After, on 429 */
		this.retryAfterS = info.retryAfterS ?? null;
		if (info.question !== undefined)
			this.question = info.question;
		if (info.cOID !== undefined)
			this.cOID = info.cOID;
	}
}

export function sleep(ms, signal) {
	return new Promise((resolve, reject) => {
		if (signal?.aborted) {
			reject(abortError());
			return;
		}
		const t = setTimeout(() => {
			signal?.removeEventListener("abort", onAbort);
			resolve();
		}, ms);
		function onAbort() {
			clearTimeout(t);
			reject(abortError());
		}
		signal?.addEventListener("abort", onAbort, { once: true });
	});
}

export function abortError() {
	return new BridgeError("request aborted", { code: "aborted" });
}

export function list(v) {
	return Array.isArray(v) ? v.map(String) : String(v).split(",").map((s) => s.trim()).filter(Boolean);
}

export function decode(method, path, res, buf) {
	const ctype = String(res.headers["content-type"] ?? "");
	let body = null;
	if (buf.length > 0) {
		const text = buf.toString("utf8");
		if (/\bjson\b/i.test(ctype)) {
			try {
				body = JSON.parse(text);
			} catch (e) {
				if (res.statusCode < 400)
					throw new BridgeError(`${method} ${path}: answer is not valid JSON`,
					    { status: res.statusCode, code: "bad_response", body: text, cause: e });
				body = text;
			}
		} else {
			body = text;
		}
	}
	if (res.statusCode >= 400) {
		let code = `http_${res.statusCode}`;
		let message = `${method} ${path}: HTTP ${res.statusCode}`;
		if (body && typeof body === "object" && typeof body.error === "string") {
			// brokerd's own errors are {"error":"<code>","message":"..."};
			// a Gateway error passed through is {"error":"<free text>"}.
			if (/^[a-z][a-z0-9_]*$/.test(body.error) && typeof body.message === "string") {
				code = body.error;
				message += ` ${code}: ${body.message}`;
			} else {
				code = "gateway_error";
				message += `: ${body.error}`;
			}
		}
		const ra = Number.parseInt(String(res.headers["retry-after"] ?? ""), 10);
		throw new BridgeError(message, { status: res.statusCode, code, body,
		    retryAfterS: Number.isFinite(ra) ? ra : null });
	}
	return { status: res.statusCode, headers: res.headers, body };
}
