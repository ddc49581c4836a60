// Hand-kept types for brokerd-client (index.js). Keep in step with it.

/** Default Unix socket of a packaged brokerd. */
export declare const DEFAULT_SOCKET: string;

export type BridgeErrorCode =
	// the client's own
	| "timeout"
	| "unreachable"
	| "aborted"
	| "bad_response"
	| "order_not_confirmed"
	| "order_rejected"
	| "too_many_questions"
	| "gateway_error"
	// brokerd's (SPEC §4)
	| "bad_request"
	| "unauthorized"
	| "forbidden"
	| "no_route"
	| "method_not_allowed"
	| "request_timeout"
	| "body_too_large"
	| "uri_too_long"
	| "misdirected_request"
	| "rate_limited"
	| "headers_too_large"
	| "not_implemented"
	| "gateway_unreachable"
	| "gateway_bad_response"
	| "not_authenticated"
	| "gateway_timeout"
	| (string & {});

/** A question the Gateway asks before it places an order. */
export interface OrderQuestion {
	id: string;
	message: string[];
	isSuppressed?: boolean;
	messageIds?: string[];
	[field: string]: unknown;
}

export declare class BridgeError extends Error {
	readonly name: "BridgeError";
	/** HTTP status, or 0 when no answer came (timeout, unreachable, aborted). */
	status: number;
	code: BridgeErrorCode;
	/** The parsed answer body (JSON or text), or null. */
	body: unknown;
	/** Seconds from Retry-After (429), or null. */
	retryAfterS: number | null;
	/** Set for order_not_confirmed / too_many_questions. */
	question?: OrderQuestion;
	/** Set on every error thrown by placeOrder. */
	cOID?: string;
	constructor(message: string, info: {
		status?: number;
		code: string;
		body?: unknown;
		retryAfterS?: number | null;
		question?: OrderQuestion;
		cOID?: string;
		cause?: unknown;
	});
}

export interface BridgeOptions {
	/** Unix socket of brokerd (default BROKERD_SOCKET, then DEFAULT_SOCKET). */
	socketPath?: string;
	/** Loopback TCP URL, e.g. http://127.0.0.1:8000 (default IBKR_BRIDGE_URL). */
	url?: string;
	/** Sent as X-Bridge-Key (default IBKR_BRIDGE_KEY). */
	key?: string;
	/** Whole-request timeout, default 20000. */
	timeoutMs?: number;
	/** Environment to read the defaults from (default process.env). */
	env?: Record<string, string | undefined>;
}

export interface CallOptions {
	signal?: AbortSignal;
	timeoutMs?: number;
}

export interface RequestOptions extends CallOptions {
	query?: Record<string, string | number | boolean | Array<string | number> | null | undefined>;
	/** Objects are sent as JSON; strings as JSON text; bytes as octet-stream. */
	body?: unknown;
	headers?: Record<string, string>;
}

export interface Health {
	status: string;
	bridge: string;
	[field: string]: unknown;
}

export interface AuthStatus {
	authenticated: boolean;
	connected: boolean;
	competing: boolean;
	state: "starting" | "gateway_down" | "unauthenticated" | "authenticated" | "competing" | "stopped" | (string & {});
	since?: string;
	checked_at?: string;
	[field: string]: unknown;
}

export interface Accounts {
	accounts: string[];
	selectedAccount?: string;
	[field: string]: unknown;
}

export interface Position {
	acctId?: string;
	conid: number;
	position: number;
	[field: string]: unknown;
}

export interface Order {
	conid?: number;
	conidex?: string;
	side: "BUY" | "SELL" | (string & {});
	orderType: string;
	quantity: number;
	price?: number;
	tif?: string;
	/** Client order id; set to a unique value when absent. */
	cOID?: string;
	[field: string]: unknown;
}

export interface OrderResult {
	order_id: string;
	order_status: string;
	encrypt_message?: string;
	[field: string]: unknown;
}

export interface PlaceOrderOptions extends CallOptions {
	/** Called for each question; only `true` confirms it. */
	confirm?: (messages: string[], question: OrderQuestion) => boolean | Promise<boolean>;
}

export interface SnapshotOptions extends CallOptions {
	/** Calls at most (default 5). */
	tries?: number;
	/** Pause between calls (default 300). */
	delayMs?: number;
	/** Stop repeating after this long (default 5000). */
	maxMs?: number;
}

export interface SnapshotRow {
	conid: number | string;
	conidEx?: string;
	[field: string]: unknown;
}

export interface HistoryOptions extends CallOptions {
	period?: string;
	bar?: string;
	exchange?: string;
	outsideRth?: boolean;
	startTime?: string;
}

export interface WaitForAuthOptions {
	timeoutMs?: number;
	intervalMs?: number;
	signal?: AbortSignal;
}

export declare class Bridge {
	constructor(opts?: BridgeOptions);
	readonly socketPath: string | null;
	readonly url: string | null;
	timeoutMs: number;
	/** Close the kept-alive connections. */
	close(): void;
	request<T = any>(method: string, path: string, opts?: RequestOptions): Promise<T>;
	health(opts?: CallOptions): Promise<Health>;
	authStatus(opts?: CallOptions): Promise<AuthStatus>;
	waitForAuth(opts?: WaitForAuthOptions): Promise<AuthStatus>;
	accounts(opts?: CallOptions): Promise<Accounts>;
	positions(accountId: string, page?: number, opts?: CallOptions): Promise<Position[]>;
	summary(accountId: string, opts?: CallOptions): Promise<Record<string, unknown>>;
	orders(opts?: CallOptions): Promise<{ orders: Array<Record<string, unknown>>; [field: string]: unknown }>;
	placeOrder(accountId: string, order: Order, opts?: PlaceOrderOptions): Promise<OrderResult[]>;
	cancelOrder(accountId: string, orderId: string | number, opts?: CallOptions): Promise<{ msg?: string; order_id?: string | number; [field: string]: unknown }>;
	snapshot(conids: Array<string | number> | string | number, fields: Array<string | number> | string | number, opts?: SnapshotOptions): Promise<SnapshotRow[]>;
	history(conid: string | number, opts?: HistoryOptions): Promise<{ data?: Array<Record<string, unknown>>; [field: string]: unknown }>;
}

/** A unique client order id (at most 40 characters). */
export declare function makeCOID(): string;

export default Bridge;
