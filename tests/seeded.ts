// Deterministic randomness for tests of pure cores that take a `rand` source.
export { seeded } from "../src/contracts/index.ts";
