// What the agent needs only once it has an address: the HTTP client (undici: reports, the action,
// the image), the action's schema (ajv), the actions themselves (deploy, capture, grow, ...).
// Evaluating these modules is most of the bundle's load time (seconds under QEMU's TCG, README
// "Performance"), so main.ts imports this module while it waits for a DHCP offer instead of
// before its first step. main.ts sets the server trust (setServerTrust) as soon as this module
// has loaded, before anything in it can connect.
export { createReporter } from '../report/client.ts';
export { fetchAction, macForUrl } from './fetch-action.ts';
export { setServerTrust } from '../net/tls-pin.ts';
export { runAction } from './run-action.ts';
export { wipeDisk } from './wipe.ts';
export { sendInventory } from '../inventory/send.ts';
export { warmUp } from './warm-up.ts';
export { dropPrestartedDecodeWorker } from '../image/parallel/decode-worker.ts';
