// Browser test of a chart page: find it by search, read values and README, copy the install
// command, download the archive, and a hostile README rendered inert.
// Usage: BASE_URL=… UI_USER=… UI_PASSWORD=… SCREENSHOTS=dir DOWNLOAD_TO=file node chart.mjs
import { base, check, join, launch, login, shots } from './lib.mjs';

const { context: browser, page } = await launch({ acceptDownloads: true });
try {
  await browser.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));

  await login(page);

  await page.getByLabel('Search charts and images').fill('webapp');
  await page.getByRole('link', { name: 'charts/webapp' }).click();
  await page.waitForURL(/\/ui\/chart\?/);
  check((await page.locator('.chart-head h1').textContent()).includes('webapp'), 'the chart page opens from the search');
  check(await page.locator('h1').count() === 1, 'one h1 per page (README headings step down)');
  check((await page.locator('.version').first().textContent()) === '0.2.0', 'the newest version is shown');
  check(await page.locator('ul.versions li').count() === 2, 'both versions are listed');
  check((await page.locator('pre.values').textContent()).includes('replicaCount: 2'), 'values.yaml is shown');
  check(await page.locator('pre.values .y-key', { hasText: 'replicaCount' }).count() === 1, 'values keys are highlighted');
  check((await page.locator('.readme h3').textContent()) === 'Web application', 'the README is rendered (its headings under the page\'s README heading)');
  check(await page.locator('.readme table').count() === 1, 'README tables are rendered');
  check((await page.locator('ul.templates li').allTextContents()).includes('deployment.yaml'), 'templates are listed');
  await page.screenshot({ path: join(shots, 'chart.png'), fullPage: true });

  // Copy the install command.
  const command = await page.locator('#cmd-oci').textContent();
  check(command.startsWith('helm install webapp oci://') && command.includes('--version 0.2.0'), 'the OCI install command');
  await page.locator('button.copy[data-copy="cmd-oci"]').click();
  check((await page.evaluate(() => navigator.clipboard.readText())) === command, 'the command is copied');
  check((await page.locator('#live').textContent()) === 'Copied to the clipboard', 'and screen readers are told');
  check(await page.getByRole('button', { name: 'Copy the helm install command' }).count() === 1, 'copy buttons name what they copy');

  // An older version, then its download.
  await page.getByRole('link', { name: '0.1.0' }).click();
  check((await page.locator('.version').first().textContent()) === '0.1.0', 'an older version opens');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('link', { name: /^Download / }).click(),
  ]);
  check(download.suggestedFilename() === 'webapp-0.1.0.tgz', 'the archive downloads under its name');
  await download.saveAs(process.env.DOWNLOAD_TO);

  // The home page's size of the chart, to compare after the delete.
  const sizeOnHome = async () => {
    await page.goto(base + '/?q=webapp');
    return page.locator('table.repos tbody tr', { hasText: 'charts/webapp' }).locator('td.num').textContent();
  };
  const sizeBefore = await sizeOnHome();
  await page.goBack();

  // Deleting a version asks first, refuses forged posts, then removes just that version.
  const forged = await page.request.post(base + '/ui/chart/delete', {
    form: { csrf: 'forged', repository: 'charts/webapp', version: '0.1.0' },
  });
  check(forged.status() === 403, 'a delete without the CSRF token is refused');
  page.once('dialog', (dialog) => dialog.dismiss());
  await page.getByRole('button', { name: 'Delete version 0.1.0' }).click();
  check(await page.locator('ul.versions li').count() === 2, 'a cancelled confirmation deletes nothing');
  page.once('dialog', (dialog) => dialog.accept());
  await page.getByRole('button', { name: 'Delete version 0.1.0' }).click();
  await page.waitForURL((url) => !url.search.includes('version='));
  check(await page.locator('ul.versions li').count() === 1, 'the version is deleted');
  check((await page.locator('.version').first().textContent()) === '0.2.0', 'the newest version remains');
  const sizeAfter = await sizeOnHome();
  check(sizeAfter !== sizeBefore, `the home page shows the smaller size at once (${sizeBefore} → ${sizeAfter})`);
  await page.goBack();

  // A hostile README is inert.
  await page.goto(base + '/ui/chart?repository=charts%2Fhostile');
  check(await page.locator('.readme').count() === 1, 'the hostile chart has its README');
  check(await page.locator('.readme script, .readme img, .readme [onclick]').count() === 0, 'no active markup survives');
  check(await page.locator('a[href^="javascript"], a[href^="data"]').count() === 0, 'javascript: and data: home and source URLs are not links');
  check((await page.locator('dd', { hasText: 'javascript:window.__pwned=5' }).count()) === 1, 'but are shown as text');
  check(await page.evaluate(() => window.__pwned === undefined), 'no injected script ran');
  await page.setViewportSize({ width: 390, height: 800 });
  await page.goto(base + '/ui/chart?repository=charts%2Fwebapp');
  await page.screenshot({ path: join(shots, 'chart-phone.png'), fullPage: true });
  check(errors.length === 0, `no script errors (${errors.join('; ')})`);
} finally {
  await browser.close();
}
