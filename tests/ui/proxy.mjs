// Browser test of the proxy cache page after pulls through the proxy.
// Usage: BASE_URL=… UI_USER=… UI_PASSWORD=… SCREENSHOTS=dir node proxy.mjs
import { base, check, join, launch, login, shots } from './lib.mjs';

const { context: browser, page } = await launch({ viewport: { width: 1200, height: 800 } });
try {
  await login(page);
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
  await page.screenshot({ path: join(shots, 'proxy.png'), fullPage: true });
} finally {
  await browser.close();
}
