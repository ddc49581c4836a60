// One brokerd client for the whole app: a kept-alive connection over the
// Unix socket (BROKERD_SOCKET) or loopback TCP (IBKR_BRIDGE_URL), the key
// from IBKR_BRIDGE_KEY. Kept on globalThis so that Next.js' hot reload in
// development does not open a new pool on every edit.
import { Bridge } from "brokerd-client";
import { createHandlers } from "./ibkr-handlers.js";

const g = globalThis as typeof globalThis & { __brokerdBridge?: Bridge };

export const bridge: Bridge = g.__brokerdBridge ?? (g.__brokerdBridge = new Bridge());

export const handlers = createHandlers(bridge, {
	accountId: process.env.IBKR_ACCOUNT_ID || undefined,
	// Gateway message ids the app accepts without asking the user, e.g.
	// IBKR_ALLOW_MESSAGE_IDS=o163,o354; empty by default: every question
	// goes back to the user.
	allowMessageIds: (process.env.IBKR_ALLOW_MESSAGE_IDS ?? "").split(",").filter(Boolean),
});

export { BridgeError } from "brokerd-client";
