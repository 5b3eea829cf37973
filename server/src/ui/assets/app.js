// Tells screen readers what changed without moving focus (the page's live region).
const say = (text) => {
  const live = document.getElementById('live');
  if (live) live.textContent = text;
};

// Search as you type: the form still works without this script (a plain GET of `/`).
(() => {
  const form = document.querySelector('form.search');
  const results = document.getElementById('results');
  if (!form || !results) return;
  let timer = null;
  let latest = 0;
  const refresh = async () => {
    const params = new URLSearchParams(new FormData(form));
    const ticket = ++latest;
    history.replaceState(null, '', '/?' + params);
    params.set('partial', '1');
    try {
      const resp = await fetch('/?' + params, { credentials: 'same-origin' });
      const html = resp.ok ? await resp.text() : null;
      // Only the newest request may fill the list: an older, slower answer is dropped.
      if (html === null || ticket !== latest) return;
      results.innerHTML = html;
      const count = results.querySelector('.count');
      if (count) say(count.textContent);
    } catch {
      // Offline or the server went away: the address holds the query; a reload retries.
    }
  };
  form.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(refresh, 200);
  });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    refresh();
  });
})();

// Copy buttons: copy the text of the element named by data-copy.
document.addEventListener('click', async (event) => {
  const button = event.target.closest('button.copy');
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source) return;
  try {
    await navigator.clipboard.writeText(source.textContent);
    button.textContent = 'Copied';
    say('Copied to the clipboard');
  } catch {
    button.textContent = 'Select and copy';
  }
  setTimeout(() => { button.textContent = 'Copy'; }, 2000);
});

// Forms that change things ask first (data-confirm); without script they submit directly.
document.addEventListener('submit', (event) => {
  const message = event.target.dataset && event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});
