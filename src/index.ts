// The package's public API: the client library, and the gateway for embedding (tests, tools).
export { SluiceClient, SluiceStreamError, toNumeric, type NumericReading, type Reading, type SluiceClientOptions } from './client/sluice-client.ts';
export { createGateway, type Gateway } from './gateway.ts';
export { loadConfig, type Config } from './config/config.ts';
export { runSimulator, type SimulatorOptions, type SimSummary } from './sim/simulator.ts';
