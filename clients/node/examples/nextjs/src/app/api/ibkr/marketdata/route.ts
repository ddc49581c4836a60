// GET /api/ibkr/marketdata (see src/lib/ibkr-handlers.js)
import { handlers } from "../../../../lib/ibkr";

export const runtime = "nodejs"; // a Unix socket needs Node, not the Edge runtime
export const dynamic = "force-dynamic";

export const GET = handlers.marketdata;
