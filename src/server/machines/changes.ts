// What changed about a machine, for whoever follows (the dashboards' live stream): both halves
// of the machine store (action-source.ts, run-recorder.ts) tell the same feed.

export type MachineChange =
  | { type: 'machine'; mac: string }
  | { type: 'log'; mac: string; lines: string[] }
  | { type: 'removed'; mac: string }
  /** the image catalog changed (replicas on PostgreSQL share it: image-catalog.ts) */
  | { type: 'images' };

export class MachineChanges {
  readonly #listeners = new Set<(c: MachineChange) => void>();

  on(fn: (c: MachineChange) => void): () => void {
    this.#listeners.add(fn);
    return () => { this.#listeners.delete(fn); };
  }

  emit(c: MachineChange): void {
    for (const fn of this.#listeners) {
      try { fn(c); } catch { /* a listener's trouble is not the store's */ }
    }
  }
}
