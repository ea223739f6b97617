// nephroseg workbench: browse micrographs, annotate a GBMSeg reference with SAM clicks,
// run GBMSeg on a folder, review and correct every mask, export (docs/workbench.md).
// Plain JS over the server's /api/ (src/serve/workbench*.cpp) and Leaflet 1.7 with a
// pixel CRS; no request leaves this server.
'use strict';

(function () {
  // The page's own folder keeps a token prefix (/T/) on every request.
  const BASE = location.pathname.slice(0, location.pathname.lastIndexOf('/') + 1);
  const $ = (id) => document.getElementById(id);

  function url(route, params) {
    const q = new URLSearchParams(params || {}).toString();
    return BASE + 'api/' + route + (q ? '?' + q : '');
  }
  async function call(route, body, params) {
    const init = body === undefined ? {} : { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) };
    const res = await fetch(url(route, params), init);
    const text = await res.text();
    let json = null;
    try { json = JSON.parse(text); } catch (e) { /* not JSON */ }
    if (!res.ok) {
      const detail = json && json.detail ? json.detail : text;
      status(detail, true);
      throw new Error(detail);
    }
    return json;
  }
  function status(text, error) {
    const s = $('status');
    s.textContent = text || '';
    s.style.color = error ? '#ff8b85' : '#ffd479';
  }
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v; else if (k.startsWith('on')) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }
  const fmt = (v, d) => (v === null || v === undefined || v === '') ? '' : (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(d === undefined ? 3 : d)) : String(v));

  // ---- state -----------------------------------------------------------------------
  const S = {
    step: 'browse', folder: null, images: [], selected: new Set(), open: null, info: null,
    models: [], tool: 'positive', session: null, version: 0, points: [], box: null, references: [],
    job: null, run: null, rows: [], current: -1, sortKey: null, sortAsc: true, correcting: false,
    latencies: [], strokes: [],
  };
  window.nephroseg = { state: S, latencies: S.latencies };
  window.nephrosegLatencies = S.latencies;

  // ---- the viewer ------------------------------------------------------------------
  const map = L.map('map', { crs: L.CRS.Simple, minZoom: -4, zoomSnap: 0.25, attributionControl: false, boxZoom: false, doubleClickZoom: false });
  map.setView([0, 0], 0);
  let imageLayer = null, maskLayer = null, sessionLayer = null, pointLayer = L.layerGroup().addTo(map), promptLayer = L.layerGroup().addTo(map);
  let boxRect = null;

  const toLatLng = (x, y) => map.unproject([x, y], S.info ? S.info.max_zoom : 0);
  const toPixel = (latlng) => map.project(latlng, S.info ? S.info.max_zoom : 0);
  window.nephroseg.map = map;
  window.nephroseg.imageToContainer = (x, y) => { const p = map.latLngToContainerPoint(toLatLng(x, y)); return [p.x, p.y]; };

  function tiledLayer(route, params, mz) {
    const Layer = L.TileLayer.extend({ getTileUrl: (c) => url(route, Object.assign({}, params, { z: c.z, x: c.x, y: c.y })) });
    const b = L.latLngBounds(toLatLng(0, S.info.height), toLatLng(S.info.width, 0));
    return new Layer('', { tileSize: 256, minZoom: -4, maxNativeZoom: mz, minNativeZoom: 0, maxZoom: mz + 4, noWrap: true, bounds: b, keepBuffer: 1 });
  }

  async function openImage(path) {
    const info = await call('info', undefined, { path });
    S.open = path; S.info = info;
    for (const l of [imageLayer, maskLayer, sessionLayer]) if (l) map.removeLayer(l);
    maskLayer = sessionLayer = null;
    pointLayer.clearLayers(); promptLayer.clearLayers();
    imageLayer = tiledLayer('tile', { path }, info.max_zoom).addTo(map);
    const b = L.latLngBounds(toLatLng(0, info.height), toLatLng(info.width, 0));
    map.setMaxBounds(b.pad(0.5));
    map.fitBounds(b);
    const cal = info.nm_per_pixel ? `${fmt(info.nm_per_pixel, 3)} nm/px (${info.calibration_source})` : 'no calibration';
    $('image-info').textContent = `${path}\n${info.width} x ${info.height} px, ${info.data_type}, ${info.channels} ch\n${cal}`;
    $('viewer-caption').textContent = `${path} — ${info.width} x ${info.height} — ${cal}`;
    document.querySelectorAll('.thumb').forEach((t) => t.classList.toggle('open', t.dataset.path === path));
    return info;
  }

  function showMask(path) {
    if (maskLayer) { map.removeLayer(maskLayer); maskLayer = null; }
    if (path && $('show-mask').checked) maskLayer = tiledLayer('tile', { path, style: 'mask', t: Date.now() }, S.info.max_zoom).addTo(map);
  }

  function refreshSession(t0) {
    if (!S.session) return;
    const params = { session: S.session, v: S.version };
    if (sessionLayer) {
      sessionLayer.setUrl('');
      sessionLayer.getTileUrl = (c) => url('annotate/tile', Object.assign({}, params, { z: c.z, x: c.x, y: c.y }));
      sessionLayer.redraw();
    } else {
      sessionLayer = tiledLayer('annotate/tile', params, S.info.max_zoom).addTo(map);
    }
    if (t0 !== undefined) {
      sessionLayer.once('load', () => {
        const ms = performance.now() - t0;
        S.latencies.push(ms);
        $('latency').textContent = `click to mask: ${ms.toFixed(0)} ms (last), ${S.latencies.length} click(s)`;
      });
    }
  }

  function drawPoints() {
    pointLayer.clearLayers();
    for (const [x, y, label] of S.points)
      L.marker(toLatLng(x, y), { icon: L.divIcon({ className: label ? 'point-pos' : 'point-neg', iconSize: [10, 10] }), interactive: false }).addTo(pointLayer);
  }

  // ---- annotation (reference and correction) -----------------------------------------
  async function startSession(maskPath) {
    if (!S.open) { status('open an image first (Browse)', true); throw new Error('no image'); }
    const model = $('annotate-model').value;
    const r = await call('annotate/start', { path: S.open, model, mask: maskPath || null });
    S.session = r.session; S.version = r.version; S.points = []; S.box = null; S.strokes = [];
    if (boxRect) { map.removeLayer(boxRect); boxRect = null; }
    drawPoints();
    refreshSession();
    $('annotate-info').textContent = `session ${r.session} on ${S.open} with ${model}`;
    return r;
  }
  async function ensureSession() { if (!S.session) await startSession(); }

  async function click(x, y, label) {
    const t0 = performance.now();
    await ensureSession();
    S.points.push([x, y, label]);
    drawPoints();
    await sendClicks(t0);
  }
  async function sendClicks(t0) {
    status('segmenting…');
    const r = await call('annotate/click', { session: S.session, points: S.points, box: S.box });
    S.version = r.version;
    status(`mask ${r.area} px${r.iou !== null ? ', predicted IoU ' + r.iou.toFixed(3) : ''}, ${r.ms.toFixed(0)} ms on the server`);
    refreshSession(t0);
    $('save-correction').disabled = !S.correcting;
  }
  async function brush(points, erase) {
    await ensureSession();
    const t0 = performance.now();
    const stroke = { points, radius: Number($('brush-radius').value), erase };
    S.strokes.push(stroke);
    const r = await call('annotate/brush', Object.assign({ session: S.session }, stroke));
    S.version = r.version;
    status(`mask ${r.area} px`);
    refreshSession(t0);
  }
  async function undoRedo(which) {
    if (!S.session) return;
    const r = await call('annotate/' + which, { session: S.session });
    S.version = r.version;
    refreshSession();
    status(`${which}: mask ${r.area} px`);
  }

  async function saveReference() {
    if (!S.session) { status('nothing to save: click on the image first', true); return; }
    const r = await call('annotate/save', { session: S.session });
    if (!S.references.some((x) => x.image === S.open)) S.references.push({ image: S.open, mask: r.path });
    status(`saved ${r.path} (${r.area} px)`);
    renderReferences();
  }
  function renderReferences() {
    const ul = $('references'); ul.innerHTML = '';
    S.references.forEach((ref, i) => ul.append(el('li', {}, `${ref.image} + ${ref.mask} `, el('button', { onclick: () => { S.references.splice(i, 1); renderReferences(); } }, 'remove'))));
    $('run-references').textContent = S.references.length ? `references: ${S.references.map((r) => r.image).join(', ')}` : 'no reference yet: annotate one (step 2)';
  }

  // Mouse on the map: points, boxes, strokes.
  let drag = null;
  map.on('mousedown', (e) => {
    if (!S.open || (S.step !== 'annotate' && !S.correcting)) return;
    if (S.tool === 'box' || S.tool === 'brush' || S.tool === 'eraser') {
      map.dragging.disable();
      const p = toPixel(e.latlng);
      drag = { start: p, points: [[p.x, p.y]] };
    }
  });
  map.on('mousemove', (e) => {
    if (!drag) return;
    const p = toPixel(e.latlng);
    if (S.tool === 'box') {
      const b = L.latLngBounds(toLatLng(drag.start.x, drag.start.y), e.latlng);
      if (boxRect) boxRect.setBounds(b); else boxRect = L.rectangle(b, { color: '#ffd479', weight: 2, fill: false, interactive: false }).addTo(map);
    } else {
      drag.points.push([p.x, p.y]);
      L.circleMarker(e.latlng, { radius: 2, color: S.tool === 'eraser' ? '#d43f3a' : '#ffd479', interactive: false }).addTo(pointLayer);
    }
  });
  map.on('mouseup', async (e) => {
    if (!drag) return;
    const d = drag; drag = null;
    map.dragging.enable();
    const p = toPixel(e.latlng);
    if (S.tool === 'box') {
      const t0 = performance.now();
      await ensureSession();
      S.box = [d.start.x, d.start.y, p.x, p.y].map((v) => Math.max(0, v));
      await sendClicks(t0);
    } else {
      d.points.push([p.x, p.y]);
      await brush(d.points, S.tool === 'eraser');
      drawPoints();
    }
  });
  map.on('click', (e) => {
    if (!S.open || (S.step !== 'annotate' && !S.correcting)) return;
    if (S.tool !== 'positive' && S.tool !== 'negative') return;
    const p = toPixel(e.latlng);
    if (p.x < 0 || p.y < 0 || p.x > S.info.width || p.y > S.info.height) return;
    click(p.x, p.y, S.tool === 'positive' ? 1 : 0).catch(() => {});
  });

  function setTool(tool) {
    S.tool = tool;
    document.querySelectorAll('#tools button').forEach((b) => b.classList.toggle('active', b.dataset.tool === tool));
  }

  // ---- browse ------------------------------------------------------------------------
  async function browse(path) {
    const r = await call('list', undefined, { path });
    S.folder = path; S.images = r.images; S.selected = new Set();
    const crumbs = $('crumbs'); crumbs.innerHTML = '';
    const parts = path.split('/');
    parts.forEach((p, i) => {
      const target = parts.slice(0, i + 1).join('/');
      crumbs.append(el('a', { onclick: () => browse(target) }, p), i < parts.length - 1 ? ' / ' : '');
    });
    const folders = $('folders'); folders.innerHTML = '';
    if (r.parent) folders.append(el('div', { onclick: () => browse(r.parent) }, '⬑ ..'));
    for (const f of r.folders) {
      const row = el('div', { class: f.is_run ? 'run' : '', 'data-path': f.path, onclick: () => browse(f.path) }, (f.is_run ? '▤ ' : '▸ ') + f.name);
      if (f.is_run) row.append(' ', el('button', { onclick: (ev) => { ev.stopPropagation(); openRun(f.path); } }, 'review'));
      folders.append(row);
    }
    const grid = $('images'); grid.innerHTML = '';
    for (const img of r.images) {
      const box = el('input', { type: 'checkbox', title: 'select as a target' });
      box.addEventListener('click', (ev) => { ev.stopPropagation(); box.checked ? S.selected.add(img.path) : S.selected.delete(img.path); updateSelection(); });
      const meta = el('div', { class: 'meta' }, `${(img.bytes / 1024).toFixed(0)} KB`);
      const t = el('div', { class: 'thumb', 'data-path': img.path, onclick: () => openImage(img.path).catch(() => {}) },
        box, el('img', { src: url('thumb', { path: img.path }), loading: 'lazy', alt: img.name }), el('div', { class: 'name', title: img.name }, img.name), meta);
      grid.append(t);
      call('info', undefined, { path: img.path }).then((i) => {
        meta.textContent = `${i.width}x${i.height} · ${i.nm_per_pixel ? fmt(i.nm_per_pixel, 2) + ' nm/px ' + i.calibration_source : 'uncalibrated'}`;
      }).catch(() => { meta.textContent = 'unreadable'; });
    }
    updateSelection();
    if (!$('run-out').value || $('run-out').dataset.auto === '1') { $('run-out').value = path + '/gbmseg-run'; $('run-out').dataset.auto = '1'; }
  }
  function updateSelection() {
    $('selection-count').textContent = S.selected.size ? `${S.selected.size} selected` : '';
    const targets = runTargets();
    $('run-targets').textContent = targets.folder ? `targets: every image of ${targets.folder} except saved references` : `targets: ${targets.targets.length} selected image(s)`;
  }
  function runTargets() {
    if (S.selected.size) return { targets: [...S.selected] };
    return { folder: S.folder };
  }

  // ---- run ---------------------------------------------------------------------------
  async function startRun() {
    if (!S.references.length) { status('annotate and save a reference first (step 2)', true); return; }
    const body = Object.assign({
      references: S.references, out: $('run-out').value.trim(),
      features: $('run-features').value, segmenter: $('run-segmenter').value,
      precision: $('run-precision').value, preset: $('run-preset').value,
      ground_truth: $('run-truth').value.trim() || null,
      nm_per_pixel: $('run-nm').value.trim() ? Number($('run-nm').value.trim()) : 'auto',
      reference_range: $('run-range').value,
    }, runTargets());
    const r = await call('gbmseg/run', body);
    S.job = r.job;
    $('run-cancel').disabled = false; $('run-start').disabled = true;
    $('run-progress').max = r.total; $('run-progress').value = 0;
    pollJob();
  }
  async function pollJob() {
    if (!S.job) return;
    const j = await call('jobs/' + S.job);
    $('run-progress').max = j.total || 1; $('run-progress').value = j.done;
    const lines = j.rows.map((r) => `${r.status === 'ok' ? '✓' : r.status} ${r.name}  ${r.dice !== undefined ? 'Dice ' + fmt(r.dice) + '  ' : ''}${r.thickness_oi_harmonic_3d_nm ? fmt(r.thickness_oi_harmonic_3d_nm, 0) + ' nm ' + r.thickness_class : ''}`);
    $('run-state').textContent = `${j.state}: ${j.done} / ${j.total}${j.error ? '\n' + j.error : ''}\n` + lines.join('\n');
    if (j.state === 'running' || j.state === 'cancelling') { setTimeout(() => pollJob().catch(() => {}), 500); return; }
    S.job = null;
    $('run-cancel').disabled = true; $('run-start').disabled = false;
    status(`GBMSeg ${j.state}`);
    if (j.state === 'done') { $('review-path').value = j.out; await openRun(j.out); }
  }

  // ---- review ------------------------------------------------------------------------
  async function openRun(path) {
    const r = await call('run', undefined, { path });
    S.run = r; S.rows = r.rows;
    $('review-path').value = path;
    if (!S.sortKey) { S.sortKey = r.with_ground_truth ? 'dice' : (r.measured ? 'thickness_oi_harmonic_3d_nm' : 'n_pos'); S.sortAsc = true; }
    sortRows(); renderTable(); renderGrid(); setStep('review');
    updateExport();
    if (S.rows.length) await selectTarget(0);
  }
  function sortRows() {
    const k = S.sortKey, dir = S.sortAsc ? 1 : -1;
    S.rows.sort((a, b) => {
      const x = a[k], y = b[k];
      if (x === null || x === undefined) return 1; if (y === null || y === undefined) return -1;
      return (x < y ? -1 : x > y ? 1 : 0) * dir;
    });
  }
  const COLUMNS = [['name', 'target'], ['dice', 'Dice'], ['thickness_oi_harmonic_3d_nm', 'OI·8/3π nm'], ['thickness_direct_median_nm', 'median nm'], ['thickness_class', 'class'], ['n_pos', '+'], ['n_neg', '−'], ['review', 'review'], ['edited', 'edited']];
  function renderTable() {
    const t = $('review-table'); t.innerHTML = '';
    const cols = COLUMNS.filter(([k]) => S.rows.some((r) => r[k] !== undefined));
    t.append(el('tr', {}, ...cols.map(([k, label]) => el('th', { 'data-key': k, onclick: () => { S.sortAsc = S.sortKey === k ? !S.sortAsc : true; S.sortKey = k; const name = currentRow() && currentRow().name; sortRows(); renderTable(); S.current = S.rows.findIndex((r) => r.name === name); highlight(); } }, label + (S.sortKey === k ? (S.sortAsc ? ' ▲' : ' ▼') : '')))));
    S.rows.forEach((r, i) => t.append(el('tr', { 'data-name': r.name, class: r.review || '', onclick: () => selectTarget(i) }, ...cols.map(([k]) => el('td', {}, k === 'edited' ? (r[k] ? '✎' : '') : fmt(r[k], k === 'dice' ? 3 : 1))))));
    highlight();
  }
  function renderGrid() {
    const g = $('review-grid'); g.innerHTML = '';
    S.rows.forEach((r, i) => g.append(el('div', { class: 'thumb', onclick: () => selectTarget(i) },
      el('img', { src: r.overlay ? url('file', { path: r.overlay }) : '', alt: r.name }), el('div', { class: 'name' }, r.name),
      el('div', { class: 'meta' }, r.dice !== undefined ? 'Dice ' + fmt(r.dice) : fmt(r.thickness_oi_harmonic_3d_nm, 0) + ' nm'))));
  }
  const currentRow = () => S.rows[S.current];
  function highlight() {
    document.querySelectorAll('#review-table tr[data-name]').forEach((tr, i) => tr.classList.toggle('current', i === S.current));
  }
  async function selectTarget(i) {
    if (i < 0 || i >= S.rows.length) return;
    S.current = i; S.correcting = false; S.session = null;
    $('save-correction').disabled = true;
    highlight();
    const r = currentRow();
    $('target-panel').hidden = false;
    $('target-name').textContent = r.name;
    if (r.image) { await openImage(r.image); showMask(r.mask); drawPrompts(); }
    const rows = [['status', r.status], ['message', r.message], ['Dice', fmt(r.dice)], ['prompts +/−', `${fmt(r.n_pos)} / ${fmt(r.n_neg)}`],
      ['pixel size', r.nm_per_pixel ? fmt(r.nm_per_pixel, 3) + ' nm (' + r.calibration_source + ')' : ''],
      ['OI harmonic × 8/(3π)', r.thickness_oi_harmonic_3d_nm !== undefined ? fmt(r.thickness_oi_harmonic_3d_nm, 1) + ' nm' : ''],
      ['direct median / mean', r.thickness_direct_median_nm !== undefined ? `${fmt(r.thickness_direct_median_nm, 1)} / ${fmt(r.thickness_direct_mean_nm, 1)} nm` : ''],
      ['class', r.thickness_class], ['note', r.thickness_note], ['review', r.review], ['edited', r.edited ? 'yes (original kept as .auto.png)' : 'no']];
    const t = $('target-numbers'); t.innerHTML = '';
    for (const [k, v] of rows) if (v !== undefined && v !== null && v !== '') t.append(el('tr', {}, el('td', {}, k), el('td', { 'data-field': k }, v)));
    const img = $('thickness-map');
    if (r.thickness_map) { img.hidden = false; img.src = url('file', { path: r.thickness_map, t: Date.now() }); } else { img.hidden = true; img.removeAttribute('src'); }
  }
  function drawPrompts() {
    promptLayer.clearLayers();
    const r = currentRow();
    if (!r || !$('show-prompts').checked) return;
    for (const [key, cls] of [['positive', 'point-pos'], ['negative', 'point-neg']])
      for (const [x, y] of r.prompts[key]) L.marker(toLatLng(x, y), { icon: L.divIcon({ className: cls, iconSize: [9, 9] }), interactive: false }).addTo(promptLayer);
  }
  async function markTarget(review) {
    const r = currentRow(); if (!r) return;
    await call('review/mark', { run: S.run.path, name: r.name, review: r.review === review ? '' : review });
    r.review = r.review === review ? '' : review;
    renderTable(); renderGrid(); selectTarget(S.current);
  }
  async function correct() {
    const r = currentRow(); if (!r) return;
    S.correcting = true;
    showMask(null);
    await startSession(r.mask);
    status('correcting: click or brush, then Save correction (S)');
  }
  async function saveCorrection() {
    const r = currentRow(); if (!r || !S.session) return;
    const res = await call('review/save', { run: S.run.path, name: r.name, session: S.session });
    Object.assign(r, res.row);
    S.correcting = false; S.session = null;
    if (sessionLayer) { map.removeLayer(sessionLayer); sessionLayer = null; }
    pointLayer.clearLayers();
    status(`saved the correction of ${r.name}; measured again`);
    renderTable(); renderGrid(); await selectTarget(S.current);
  }
  function updateExport() {
    if (!S.run) return;
    $('export-run').textContent = `run: ${S.run.path}`;
    $('export-csv').href = url('export/summary.csv', { run: S.run.path });
    $('export-report').href = url('export/report', { run: S.run.path });
    $('export-zip').href = url('export/masks.zip', { run: S.run.path });
  }

  // ---- steps, keys, start --------------------------------------------------------------
  function setStep(step) {
    S.step = step;
    document.querySelectorAll('#steps button').forEach((b) => b.classList.toggle('active', b.dataset.step === step));
    document.querySelectorAll('#left section').forEach((s) => { s.hidden = s.dataset.panel !== step; });
    $('target-panel').hidden = step !== 'review' || S.current < 0;
    if (step === 'run') { renderReferences(); updateSelection(); }
    if (step === 'export') updateExport();
  }
  document.querySelectorAll('#steps button').forEach((b) => b.addEventListener('click', () => setStep(b.dataset.step)));
  document.querySelectorAll('#tools button').forEach((b) => b.addEventListener('click', () => setTool(b.dataset.tool)));
  $('brush-radius').addEventListener('input', () => { $('brush-radius-value').textContent = $('brush-radius').value; });
  $('undo').onclick = () => undoRedo('undo');
  $('redo').onclick = () => undoRedo('redo');
  $('clear-points').onclick = () => { S.points = []; S.box = null; if (boxRect) { map.removeLayer(boxRect); boxRect = null; } drawPoints(); };
  $('save-reference').onclick = () => saveReference().catch(() => {});
  $('select-all').onclick = () => { S.images.forEach((i) => S.selected.add(i.path)); document.querySelectorAll('#images input').forEach((b) => { b.checked = true; }); updateSelection(); };
  $('select-none').onclick = () => { S.selected.clear(); document.querySelectorAll('#images input').forEach((b) => { b.checked = false; }); updateSelection(); };
  $('run-out').addEventListener('input', () => { $('run-out').dataset.auto = '0'; });
  $('run-start').onclick = () => startRun().catch(() => { $('run-start').disabled = false; });
  $('run-cancel').onclick = () => S.job && call(`jobs/${S.job}/cancel`, {}).catch(() => {});
  $('review-open').onclick = () => openRun($('review-path').value.trim()).catch(() => {});
  $('show-prompts').onchange = drawPrompts;
  $('show-mask').onchange = () => showMask(currentRow() && !S.correcting ? currentRow().mask : null);
  $('review-grid-toggle').onclick = () => { $('review-grid').hidden = !$('review-grid').hidden; $('review-table-wrap').hidden = !$('review-grid').hidden; };
  $('accept').onclick = () => markTarget('accepted').catch(() => {});
  $('reject').onclick = () => markTarget('rejected').catch(() => {});
  $('next-target').onclick = () => selectTarget(S.current + 1);
  $('prev-target').onclick = () => selectTarget(S.current - 1);
  $('correct').onclick = () => correct().catch(() => {});
  $('save-correction').onclick = () => saveCorrection().catch(() => {});
  $('help-button').onclick = () => { $('help').hidden = false; };
  $('help-close').onclick = () => { $('help').hidden = true; };

  document.addEventListener('keydown', (e) => {
    if (e.target.tagName === 'INPUT' || e.target.tagName === 'SELECT') return;
    const k = e.key.toLowerCase();
    if ((e.ctrlKey || e.metaKey) && k === 'z') { e.preventDefault(); undoRedo(e.shiftKey ? 'redo' : 'undo'); return; }
    if ((e.ctrlKey || e.metaKey) && k === 'y') { e.preventDefault(); undoRedo('redo'); return; }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const actions = {
      p: () => setTool('positive'), n: () => setTool('negative'), b: () => setTool('box'), r: () => setTool('brush'), e: () => setTool('eraser'),
      '[': () => { $('brush-radius').value = Math.max(1, Number($('brush-radius').value) - 1); $('brush-radius').dispatchEvent(new Event('input')); },
      ']': () => { $('brush-radius').value = Number($('brush-radius').value) + 1; $('brush-radius').dispatchEvent(new Event('input')); },
      s: () => (S.correcting ? saveCorrection() : saveReference()).catch(() => {}),
      j: () => selectTarget(S.current + 1), k: () => selectTarget(S.current - 1),
      a: () => markTarget('accepted').catch(() => {}), x: () => markTarget('rejected').catch(() => {}),
      c: () => correct().catch(() => {}), o: () => { $('show-prompts').checked = !$('show-prompts').checked; drawPrompts(); },
      '?': () => { $('help').hidden = !$('help').hidden; }, escape: () => { $('help').hidden = true; },
      1: () => setStep('browse'), 2: () => setStep('annotate'), 3: () => setStep('run'), 4: () => setStep('review'), 5: () => setStep('export'),
    };
    if (actions[k]) { e.preventDefault(); actions[k](); }
  });

  async function start() {
    const [roots, models] = await Promise.all([call('roots'), call('models')]);
    S.models = models.models;
    const sam = S.models.filter((m) => m.kind === 'sam' || m.kind === 'medsam' || m.kind === 'classical');
    $('annotate-model').innerHTML = '';
    sam.forEach((m) => $('annotate-model').append(el('option', { value: m.name }, `${m.name} (${m.kind})`)));
    const feats = S.models.filter((m) => m.kind === 'dinov2' || m.kind === 'classical');
    const segs = S.models.filter((m) => m.kind === 'sam' || m.kind === 'classical');
    feats.forEach((m) => $('run-features').append(el('option', { value: m.name }, `${m.name} (${m.kind})`)));
    segs.forEach((m) => $('run-segmenter').append(el('option', { value: m.name }, `${m.name} (${m.kind})`)));
    models.precisions.forEach((p) => $('run-precision').append(el('option', { value: p }, p)));
    models.presets.forEach((p) => $('run-preset').append(el('option', { value: p }, p)));
    models.reference_ranges.forEach((r) => $('run-range').append(el('option', { value: r.id }, `${r.id}: ${fmt(r.low_nm, 0)}-${fmt(r.high_nm, 0)} nm (${r.population})`)));
    $('run-range').value = models.default_reference_range;
    renderReferences();
    if (roots.roots.length) await browse(roots.roots[0].path);
    else status('this server shows no folders: start it with --root DIR', true);
    window.nephroseg.ready = true;
  }
  Object.assign(window.nephroseg, { browse, openImage, openRun, selectTarget, setStep, setTool });
  start().catch((e) => status(String(e.message || e), true));
})();
