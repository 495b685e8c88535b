// A test whose prerequisite (a host tool, a file) is missing: skipped, saying why, on a developer's
// machine; under CI=true it runs and fails on what is missing, because CI installs everything the
// tests need (scripts/host-deps.sh) and a skipped test there would hide a broken set-up.

/** node:test's `skip` option: false when present or under CI, else the reason. */
export function skipUnlessPresent(present: boolean, why: string): string | false {
  if (present || process.env.CI === 'true') return false;
  return why;
}
