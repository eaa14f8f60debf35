// The surface of src/config: what other folders may import from it.
export { DEFAULTS } from "./defaults.ts";
export { DEFAULTS_TOML, type LoadedConfig, type Overrides, configToToml, loadConfig } from "./load.ts";
export { type Config, type LogLevel } from "./schema.ts";
