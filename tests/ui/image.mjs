// Browser test of an image page: a multi-arch index shows its platforms; a platform's image
// shows layers and history; the pull command copies.
// Usage: BASE_URL=… UI_USER=… UI_PASSWORD=… SCREENSHOTS=dir node image.mjs
import { base, check, join, launch, login, shots } from './lib.mjs';

const { context: browser, page } = await launch();
try {
  await browser.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await login(page);

  await page.getByLabel('Kind').selectOption('image');
  await page.getByLabel('Search charts and images').fill('arch');
  await page.getByRole('link', { name: 'multi/arch' }).click();
  await page.waitForURL(/\/ui\/image\?/);
  await page.getByRole('link', { name: 'multi', exact: true }).click();
  await page.waitForURL(/tag=multi/);
  const platforms = await page.locator('table.platforms td.platform').allTextContents();
  check(platforms.includes('linux/amd64') && platforms.includes('linux/arm64'), `the index's platforms are listed (${platforms})`);
  const tagRows = page.locator('table.tags tbody tr');
  check(await tagRows.count() === 2, 'both tags are listed');
  const current = tagRows.filter({ hasText: 'multi' }).first();
  check(/^[0-9a-f]{12}$/.test(await current.locator('abbr').textContent()), 'with their short digest');
  check((await current.locator('abbr').getAttribute('title')).startsWith('sha256:'), 'the full digest on hover');
  check(/\d/.test(await current.locator('td.num').textContent()), 'and their size');
  check(/^\d{4}-\d\d-\d\dT/.test(await tagRows.filter({ hasText: 'single' }).locator('td').last().textContent()), 'and the image created time');
  await page.screenshot({ path: join(shots, 'image.png'), fullPage: true });

  const pull = await page.locator('#cmd-docker').textContent();
  check(pull.endsWith('/multi/arch:multi'), 'the docker pull line names the tag');
  await page.locator('button.copy[data-copy="cmd-docker"]').click();
  check((await page.evaluate(() => navigator.clipboard.readText())) === pull, 'the pull line is copied');

  // The single-platform tag: layers and history from its config.
  await page.getByRole('link', { name: 'single' }).click();
  check(await page.locator('table.layers tbody tr').count() === 2, 'its layers are listed');
  check(await page.locator('ol.history li').count() >= 1, 'its history is shown');
  check((await page.locator('dd', { hasText: 'linux/' }).count()) === 1, 'its platform comes from the config');
  // Retag the index, then delete the new tag again (confirmed); a forged post is refused.
  await page.getByRole('link', { name: 'multi', exact: true }).click();
  await page.getByLabel('New tag for multi').fill('stable');
  await page.getByRole('button', { name: 'Add tag' }).click();
  await page.waitForURL(/tag=stable/);
  check((await page.locator('.chart-head .version').textContent()) === 'stable', 'the new tag opens');
  check((await page.locator('table.tags td.repo').allTextContents()).includes('stable'), 'the new tag is listed');
  const forged = await page.request.post(base + '/ui/tag/delete', {
    form: { csrf: 'forged', repository: 'multi/arch', tag: 'stable' },
  });
  check(forged.status() === 403, 'a delete without the CSRF token is refused');
  page.once('dialog', (dialog) => dialog.accept());
  await page.getByRole('button', { name: 'Delete tag stable' }).click();
  await page.waitForURL((url) => !url.search.includes('tag=stable'));
  check(!(await page.locator('table.tags td.repo').allTextContents()).includes('stable'), 'the tag is deleted');
  check(errors.length === 0, `no script errors (${errors.join('; ')})`);
} finally {
  await browser.close();
}
