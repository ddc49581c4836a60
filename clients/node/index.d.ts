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
	| "closed"
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
	/** Set when a stream ended: the WebSocket close code (1008, ...). */
	closeCode?: number;
	/** Set when a stream ended: the close frame's reason. */
	closeReason?: string;
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

export interface StreamOptions {
	/** Path of brokerd's WebSocket, "/ws" (default) or "/v1/api/ws". */
	path?: string;
	/** Reconnect after a drop and resubscribe (default true). */
	reconnect?: boolean;
	/** First reconnection delay (default 1000), doubled up to maxDelayMs. */
	minDelayMs?: number;
	/** Longest reconnection delay (default 30000). */
	maxDelayMs?: number;
	/** Ping brokerd this often; a silent peer is dropped (default 30000). */
	pingIntervalMs?: number;
	/** A larger message closes the socket with 1009 (default 16 MiB). */
	maxMessageBytes?: number;
	/** Unread messages at which the socket is paused (default 1000). */
	highWaterMark?: number;
}

/** Arguments of each topic; the Gateway's message is built from them. */
export interface StreamTopicArgs {
	smd: { conid: string | number; fields: Array<string | number> | string; [field: string]: unknown };
	sor: { filters?: string[] };
	str: { realtimeUpdatesOnly?: boolean; days?: number };
	spl: Record<string, never>;
	ssd: { account: string; [field: string]: unknown };
	sld: { account: string; [field: string]: unknown };
	sbd: { account: string; conid: string | number; exchange: string };
	smh: { conid: string | number; exchange?: string; period?: string; bar?: string;
	    outsideRth?: boolean; source?: string; format?: string };
}

export interface StreamUnsubscribeArgs {
	smd: { conid: string | number };
	sor: Record<string, never>;
	str: Record<string, never>;
	spl: Record<string, never>;
	ssd: { account: string };
	sld: { account: string };
	sbd: { account: string };
	smh: { serverId: string | number; conid?: string | number };
}

export type StreamTopic = keyof StreamTopicArgs;

/** One message of the Gateway (or of brokerd), parsed. */
export interface StreamMessage {
	topic?: string;
	[field: string]: unknown;
}

/** Yielded while the socket is down, before a reconnection. */
export interface StreamDisconnected {
	topic: "system";
	client: "disconnected";
	code: number;
	reason: string;
}

export declare class BridgeStream {
	private constructor(bridge: Bridge, opts?: StreamOptions);
	readonly path: string;
	reconnect: boolean;
	readonly state: "connecting" | "open" | "closing" | "closed";
	/** The last close code and reason, from brokerd's close frame or 1006. */
	readonly lastClose: { code: number; reason: string } | null;
	readonly reconnects: number;
	/** Active subscriptions, as the messages that replay them. */
	readonly subscriptions: string[];
	subscribe<T extends StreamTopic>(topic: T, ...args: {} extends StreamTopicArgs[T] ?
	    [args?: StreamTopicArgs[T]] : [args: StreamTopicArgs[T]]): void;
	unsubscribe<T extends StreamTopic>(topic: T, ...args: {} extends StreamUnsubscribeArgs[T] ?
	    [args?: StreamUnsubscribeArgs[T]] : [args: StreamUnsubscribeArgs[T]]): void;
	/** A raw message (`tic`, `ech+hb`); not replayed after a reconnect. */
	send(text: string): void;
	/**
	 * Close handshake with code (default 1000), or abort an upgrade on its
	 * way; no reconnection follows.
	 */
	close(code?: number, reason?: string): Promise<void>;
	[Symbol.asyncIterator](): AsyncIterator<StreamMessage | StreamDisconnected | string, undefined>;
	on(event: "open", listener: () => void): this;
	on(event: "message", listener: (msg: StreamMessage | StreamDisconnected | string) => void): this;
	on(event: "close", listener: (code: number, reason: string) => void): this;
	on(event: "error", listener: (err: BridgeError) => void): this;
	once(event: "open", listener: () => void): this;
	once(event: "message", listener: (msg: StreamMessage | StreamDisconnected | string) => void): this;
	once(event: "close", listener: (code: number, reason: string) => void): this;
	once(event: "error", listener: (err: BridgeError) => void): this;
	off(event: "open" | "message" | "close" | "error", listener: (...args: any[]) => void): this;
}

/** GET /stream query: smd=CONID:F,F (repeatable), sor=1, str=1, spl=1, ssd=ACCT, sld=ACCT. */
export type EventStreamQuery = Record<string, string | number | Array<string | number>>;

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
	/** A WebSocket to brokerd's /ws with resubscription after reconnects. */
	stream(opts?: StreamOptions): BridgeStream;
	/** GET /stream (Server-Sent Events) as brokerd's raw bytes, for a relay. */
	eventStream(query: EventStreamQuery, opts?: CallOptions): Promise<ReadableStream<Uint8Array>>;
}

/** A unique client order id (at most 40 characters). */
export declare function makeCOID(): string;

export default Bridge;
