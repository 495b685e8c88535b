import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import {
  ProgressTracker, createProgressPrinter, formatBytes, formatDuration, formatProgressBar, formatProgressLine,
} from '../../src/image/progress.ts';

test('byte, rate and duration formatting', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(999), '999 B');
  assert.equal(formatBytes(1000), '1.00 kB');
  assert.equal(formatBytes(4294967296), '4.29 GB');
  assert.equal(formatBytes(123456789), '123 MB');
  assert.equal(formatBytes(12345678), '12.3 MB');
  assert.equal(formatDuration(0), '0:00');
  assert.equal(formatDuration(75), '1:15');
  assert.equal(formatDuration(3725), '1:02:05');
  assert.equal(formatDuration(Number.POSITIVE_INFINITY), '?');
});

test('tracker: rate over the window and ETA from the total', () => {
  let now = 0;
  const t = new ProgressTracker({ total: 1000e6, windowMs: 5000, now: () => now });
  now = 1000; t.bytes = 100e6;
  let s = t.snapshot();
  assert.equal(s.rate, 100e6);
  assert.equal(s.etaSeconds, 9);
  assert.equal(s.elapsed, 1);
  // the rate follows the recent past: 10 s later at a slower pace
  for (let i = 2; i <= 12; i++) { now = i * 1000; t.bytes = 100e6 + (i - 1) * 10e6; s = t.snapshot(); }
  assert.ok(Math.abs(s.rate - 10e6) < 1, `rate ${s.rate}`);
  assert.equal(s.total, 1000e6);
});

test('progress line and bar', () => {
  const p = { bytes: 1.23e9, total: 4.29e9, wireBytes: 210e6, rate: 312.4e6, etaSeconds: 10, elapsed: 4 };
  assert.equal(formatProgressLine(p), '1.23 GB / 4.29 GB (28%) 312.4 MB/s ETA 0:10, wire 210 MB');
  const bar = formatProgressBar(p, 120);
  assert.match(bar, /^\[#{8}\.{22}\] 1\.23 GB/);
  assert.ok(formatProgressBar(p, 60).length < 60);
  assert.equal(formatProgressLine({ bytes: 5e6, wireBytes: 5e6, rate: 1e6, elapsed: 5 }), '5.00 MB 1.0 MB/s');
});

function sink(): { out: Writable & { isTTY?: boolean; columns?: number }; text: () => string } {
  let text = '';
  const out = new Writable({ write(c, _e, cb) { text += String(c); cb(); } });
  return { out, text: () => text };
}

test('printer: a line at most every interval when not a TTY, always the final one', () => {
  let now = 0;
  const s = sink();
  const pr = createProgressPrinter({ out: s.out, tty: false, lineIntervalMs: 5000, now: () => now });
  const snap = (b: number) => ({ bytes: b, wireBytes: b, rate: 1e6, elapsed: now / 1000 });
  for (let i = 1; i <= 20; i++) { now = i * 1000; pr.update(snap(i * 1e6)); }
  pr.done(snap(21e6));
  const lines = s.text().trim().split('\n');
  assert.equal(lines.length, 5, s.text()); // t=5,10,15,20 + final
  assert.ok(!s.text().includes('\r'));
  assert.match(lines[4], /^21\.0 MB/);
});

test('printer: on a TTY it redraws one line in place and ends it', () => {
  const s = sink();
  const pr = createProgressPrinter({ out: s.out, tty: true, prefix: 'x: ' });
  pr.update({ bytes: 1e6, total: 2e6, wireBytes: 1e6, rate: 1e6, elapsed: 1 });
  pr.update({ bytes: 2e6, total: 2e6, wireBytes: 1e6, rate: 1e6, elapsed: 2 });
  pr.done({ bytes: 2e6, total: 2e6, wireBytes: 1e6, rate: 1e6, elapsed: 2 });
  const t = s.text();
  assert.equal(t.split('\r').length - 1, 3);
  assert.equal(t.split('\n').length - 1, 1);
  assert.ok(t.endsWith('\n'));
  assert.match(t, /\(100%\)/);
});
