// Browser test of the proxy cache page after pulls through the proxy.
// Usage: BASE_URL=… UI_USER=… UI_PASSWORD=… SCREENSHOTS=dir node proxy.mjs
import { chromium } from 'playwright-core';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const base = process.env.BASE_URL;
const check = (ok, what) => { if (!ok) throw new Error(`failed: ${what}`); console.log(`ok: ${what}`); };
const browser = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'ui-')), {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1200, height: 800 },
});
try {
  const page = browser.pages()[0] ?? await browser.newPage();
  await page.goto(base + '/ui/login');
  await page.getByLabel('Username').fill(process.env.UI_USER);
  await page.getByLabel('Password').fill(process.env.UI_PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(base + '/');
  await page.getByRole('link', { name: 'Proxy cache' }).click();
  check(await page.getByRole('heading', { name: 'Proxy cache' }).isVisible(), 'the proxy page opens');
  const usage = await page.locator('#usage + p').textContent();
  check(/^[0-9.]+ (KiB|MiB) of 10\.0 GiB/.test(usage), `usage against maxSizeGB is shown (${usage})`);
  check(await page.getByRole('img', { name: /percent of the cache used/ }).count() === 1, 'the usage meter is labelled');
  const row = page.locator('table.upstreams tbody tr', { hasText: 'docker.io' });
  check(await row.count() === 1, 'the upstream has a row');
  const blobs = await row.locator('td').nth(2).textContent();
  const [hits] = blobs.split(' / ').map(Number);
  check(hits >= 1, `blob hits are counted (${blobs})`);
  check((await page.locator('#usage ~ p.muted').textContent()).includes('%'), 'the hit ratio is shown');
  await page.screenshot({ path: join(process.env.SCREENSHOTS, 'proxy.png'), fullPage: true });
} finally {
  await browser.close();
}
