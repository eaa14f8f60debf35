// The surface of src/ops: what other folders may import from it.
export { createAdminService } from "./admin.ts";
export { defaultHome, ensureHome } from "./home.ts";
export { createLogger } from "./logger.ts";
export { registerNodeMetrics, registerNodeTimers } from "./node-metrics.ts";
export { registerProcessMetrics } from "./process-metrics.ts";
export { installProcessGuards, type ProcessGuards } from "./process-guards.ts";
