/**
 * The NATS JetStream adapter's public face: what the rest of mayhem (open.ts, tests, benches)
 * imports. Everything else in this folder is the adapter's own business.
 */
export { NatsBroker, openNatsBroker, type NatsBrokerStats } from './broker.js';
export { openNatsPublisher } from './publisher.js';
export { type NatsAuth, type NatsOptions } from './options.js';
export { BrowsingBroker, openBrowsingBroker, StreamBrowser, type StreamMessage } from './browse.js';
