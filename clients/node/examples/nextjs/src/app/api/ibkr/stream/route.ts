// GET /api/ibkr/stream?smd=265598:31,84&sor=1 (see src/lib/ibkr-handlers.js):
// Server-Sent Events for the browser, relayed from brokerd's /stream.
//   const es = new EventSource("/api/ibkr/stream?smd=265598:31,84");
//   es.addEventListener("smd+265598", (e) => show(JSON.parse(e.data)));
import { handlers } from "../../../../lib/ibkr";

export const runtime = "nodejs"; // a Unix socket needs Node, not the Edge runtime
export const dynamic = "force-dynamic";

export const GET = handlers.stream;
