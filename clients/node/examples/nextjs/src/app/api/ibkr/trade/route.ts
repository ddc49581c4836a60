// POST /api/ibkr/trade places an order, DELETE /api/ibkr/trade?orderId=
// cancels one (see src/lib/ibkr-handlers.js)
import { handlers } from "../../../../lib/ibkr";

export const runtime = "nodejs"; // a Unix socket needs Node, not the Edge runtime
export const dynamic = "force-dynamic";

export const POST = handlers.trade;
export const DELETE = handlers.trade;
