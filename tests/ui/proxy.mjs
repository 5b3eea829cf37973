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

  // The cached image can be browsed, not changed: only the proxy writes its cache.
  await page.goto(base + '/ui/image?repository=proxy%2Fdocker.io%2Flibrary%2Fapp&tag=v1');
  check(await page.locator('table.tags tbody tr').count() === 1, 'the cached image has a page');
  check(await page.locator('form[action="/ui/tag/copy"], form[action="/ui/tag/delete"]').count() === 0, 'with no retag or delete form');
  const csrf = await page.locator('form[action="/ui/logout"] input[name="csrf"]').inputValue();
  for (const [path, form] of [
    ['/ui/tag/copy', { csrf, repository: 'proxy/docker.io/library/app', source: 'v1', target: 'latest' }],
    ['/ui/tag/delete', { csrf, repository: 'proxy/docker.io/library/app', tag: 'v1' }],
  ]) {
    check((await page.request.post(base + path, { form })).status() === 403, `${path} refuses to change the proxy cache`);
  }
} finally {
  await browser.close();
}
