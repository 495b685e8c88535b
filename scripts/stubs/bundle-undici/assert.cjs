// node:assert as undici sees it in booty's bundle (scripts/bundle.mjs, lazyUndiciParts): undici
// calls only assert(value) on its own invariants, and loading node:assert (its AssertionError
// builds a diff and colour support, which opens stderr) was a tenth of a second of the agent's
// boot under QEMU's TCG. A failed invariant still throws an AssertionError with code
// ERR_ASSERTION, as node:assert's would.
'use strict';

class AssertionError extends Error {
  constructor(message) {
    super(message);
    this.name = 'AssertionError';
    this.code = 'ERR_ASSERTION';
  }
}

function assert(value, message) {
  if (value) return;
  if (message instanceof Error) throw message;
  throw new AssertionError(message === undefined ? 'The expression evaluated to a falsy value' : String(message));
}
assert.ok = assert;
assert.AssertionError = AssertionError;

module.exports = assert;
