// Shared contracts (STYLE "Shared contracts"): the types every room agrees on, plus the small pieces that
// go with them (the system and fake clocks, the metrics registry, address parsing, a bounded map). Rooms
// import from here.
export {
  type HostPort,
  type PeerAddress,
  formatAddress,
  localOf,
  parseAddress,
  remoteOf,
  unmapIp,
} from "./address.ts";
export { BoundedMap } from "./bounded-map.ts";
export { type Clock, type TimerHandle, systemClock } from "./clock.ts";
export { FakeClock, type RunUntilOptions, settle } from "./fake-clock.ts";
export { formatIPv4, formatIPv6, isV4Mapped, parseIPv4, parseIPv6 } from "./ip.ts";
export { specialRangeOf } from "./ip-range.ts";
export { type LogFields, type LogLevel, type Logger, lineLogger, silentLogger } from "./logger.ts";
export {
  type Counter,
  type FamilyOptions,
  type Gauge,
  type Histogram,
  type HistogramOptions,
  LATENCY_BUCKETS_SECONDS,
  type LabelValues,
  type MetricsRegistry,
  PROMETHEUS_CONTENT_TYPE,
  type PulledFamilyOptions,
  createMetricsRegistry,
} from "./metrics.ts";
export { type Service, type ServiceGroup, asService, createServiceGroup } from "./service.ts";
export { seeded } from "./seeded.ts";
