// Shared contracts (STYLE "Shared contracts"): the types every room agrees on, plus the small pieces that
// go with them (the system and fake clocks, the metrics registry, address parsing). Rooms import from here.
export type { Service, ServiceGroup } from "./service.ts";
export { asService, createServiceGroup } from "./service.ts";
export type { LogFields, Logger, LogLevel } from "./logger.ts";
export { lineLogger, silentLogger } from "./logger.ts";
export type { Clock, TimerHandle } from "./clock.ts";
export { systemClock } from "./clock.ts";
export { FakeClock, settle, type RunUntilOptions } from "./fake-clock.ts";
export type { Counter, FamilyOptions, Gauge, Histogram, HistogramOptions, LabelValues, MetricsRegistry, PulledFamilyOptions } from "./metrics.ts";
export { createMetricsRegistry, LATENCY_BUCKETS_SECONDS, PROMETHEUS_CONTENT_TYPE } from "./metrics.ts";
export type { HostPort, PeerAddress } from "./address.ts";
export { formatAddress, localOf, parseAddress, remoteOf, unmapIp } from "./address.ts";
export { formatIPv4, formatIPv6, isV4Mapped, parseIPv4, parseIPv6 } from "./ip.ts";
