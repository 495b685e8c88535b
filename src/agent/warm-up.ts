// Work the agent does ahead of time, while it waits for a DHCP offer (a server that probes the
// address first takes seconds to answer), so that it is off the path from the action arriving to
// the first byte written. On a slow CPU (QEMU's TCG, README "Performance") each of these is a
// second or more when done on demand. One piece per turn of the event loop: an offer that
// arrives meanwhile waits for one piece at most, not for all of them.
import { validators } from '../config/schema.ts';
import type { Logger } from '../util/log.ts';
import { warmHttp } from './http-warm-up.ts';
import type { ServerRef } from './boot-params.ts';

/** The warm-up under way: `fetching()` says the action's GET starts now, which makes undici's
 *  first request itself: the warm-up's own request, if not started yet, would only be a second
 *  one competing with it for the main thread (a DHCP server that answers at once leaves no wait
 *  to hide it in). */
export interface WarmUp { fetching(): void }

export function warmUp(server: ServerRef | undefined, log: Logger): WarmUp {
  let fetching = false;
  const steps: (() => void)[] = [];
  // (the deploy's decode worker was started just before this module was evaluated: main.ts
  // warmUpOnce)
  // undici's first request (its WebAssembly parser compiled, its code run once), made to this
  // process itself: the action's GET would pay for it otherwise (http-warm-up.ts)
  steps.push(() => { if (!fetching) void warmHttp(log); });
  // ajv compiles a validator on its first use: compile the ones the action most likely needs
  for (const n of server?.style === 'bootyurl' ? ['writeImage'] as const : ['combined', 'deploy'] as const) steps.push(() => { void validators[n]; });
  const next = () => {
    const step = steps.shift();
    if (step === undefined) return;
    step();
    setImmediate(next);
  };
  // the first piece on the next turn too: when the lease is already there, the agent's own
  // continuation (the action's GET, which calls fetching()) runs before it
  setImmediate(next);
  return { fetching: () => { fetching = true; } };
}
