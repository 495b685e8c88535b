// Debian's chromium (apt: chromium) driven by playwright-core, for dashboard tests. Never
// downloads a browser: tests skip when /usr/bin/chromium is absent (and fail under CI=true).

import { existsSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { skipUnlessPresent } from './prerequisite.ts';

export const CHROMIUM = '/usr/bin/chromium';

/** node:test's skip reason when Chromium is missing (never under CI=true: there the test fails). */
export function chromiumMissing(): string | false {
  return skipUnlessPresent(existsSync(CHROMIUM), `${CHROMIUM} is not installed (apt-get install chromium, or run scripts/host-deps.sh)`);
}

export async function launchChromium(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
}

/** Log in to the dashboard at `url` with an operator token, through its form, as a person would. */
export async function loginToDashboard(page: Page, url: string, token: string): Promise<void> {
  await page.goto(url + '/');
  await page.locator('#login #token').fill(token);
  await page.locator('#login button[type=submit]').click();
  await page.locator('#logout').waitFor();
}
