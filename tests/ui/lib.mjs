// Shared by the browser tests: a headless Debian chromium with a fresh profile, named checks,
// and the login form.
import { chromium } from 'playwright-core';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const base = process.env.BASE_URL;
export const shots = process.env.SCREENSHOTS;

/** Fails the script with `what` unless `ok`; prints each passed check. */
export const check = (ok, what) => {
  if (!ok) throw new Error(`failed: ${what}`);
  console.log(`ok: ${what}`);
};

/** A browser context (its own profile directory) and its first page. */
export async function launch(options = {}) {
  const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'ui-')), {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1200, height: 900 },
    ...options,
  });
  const page = context.pages()[0] ?? await context.newPage();
  return { context, page };
}

/** Logs in through the form (as the test user by default) and waits for the home page. */
export async function login(page, user = process.env.UI_USER, password = process.env.UI_PASSWORD) {
  await page.goto(base + '/ui/login');
  await page.getByLabel('Username').fill(user);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(base + '/');
}

export { join };
