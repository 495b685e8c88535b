// Replicas' change feeds joined: what this replica's machine store announces (changes.ts) is
// published to the other replicas through the state store (PostgreSQL NOTIFY), and what they
// publish is announced here, so the live stream (event-stream.ts) of every replica shows every
// change. A change heard from another replica is not published again (no echo between replicas).
// SQLite has no other replicas: its store publishes nothing and hears nothing.

import type { StateStore } from '../store/state-store.ts';
import type { MachineChanges } from './changes.ts';

export function relayChanges(changes: MachineChanges, store: StateStore, onError: (e: Error) => void): () => void {
  let relaying = false;
  const offLocal = changes.on((c) => {
    if (relaying) return;
    store.publish(c).catch((e: Error) => onError(e));
  });
  const offRemote = store.onRemoteChange((c) => {
    relaying = true;
    try { changes.emit(c); } finally { relaying = false; }
  });
  return () => { offLocal(); offRemote(); };
}
