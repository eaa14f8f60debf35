// The surface of src/sim, the network simulator: what scripts and tests use of it.
export { type Coalition, type HostileHost, crowdVictim, forgeRecord, lieInFind, refuseKeyChecksSelectively, relayForgedRecords } from "./hostile.ts";
export { type Attack, type SimNode, SimNetwork, kindName, meshDefaults } from "./network.ts";
export { convergenceSvg, hopsSvg, loadSvg, writePlots } from "./plot.ts";
export { type Sample, type SimOptions, type SimResult, runSimulation } from "./run.ts";
export { SimClock } from "./sim-clock.ts";
