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
  async function call(route, body, params, quiet) {
    const init = body === undefined ? {} : { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) };
    let res;
    try { res = await fetch(url(route, params), init); } catch (e) {
      if (!quiet) status('the server does not answer (is nephroseg serve still running?)', true);
      throw e;
    }
    const text = await res.text();
    let json = null;
    try { json = JSON.parse(text); } catch (e) { /* not JSON */ }
    if (!res.ok) {
      const detail = json && json.detail ? json.detail : `${res.status} ${res.statusText}`;
      if (!quiet) status(detail, true);
      throw new Error(detail);
    }
    return json;
  }
  function status(text, error) {
    const s = $('status');
    s.textContent = text || '';
    s.title = text || '';
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
    step: 'browse', folder: null, images: [], masks: new Set(), selected: new Set(), open: null, info: null,
    models: [], tool: 'positive', session: null, version: 0, points: [], box: null, references: [],
    past: [], future: [], job: null, run: null, rows: [], current: -1, sortKey: null, sortAsc: true, correcting: false,
    latencies: [], strokes: [],  // strokes: the session's brush strokes as sent (the browser test replays them)
  };
  window.nephroseg = { state: S, latencies: S.latencies };
  window.nephrosegLatencies = S.latencies;
  const HISTORY = 32;  // client-side prompt history, as deep as the server keeps masks at most
  const isMaskName = (name) => /\.mask\.png$/i.test(name);
  const maskPathOf = (image) => image.replace(/\.[^./]+$/, '') + '.mask.png';

  // ---- the viewer ------------------------------------------------------------------
  const map = L.map('map', { crs: L.CRS.Simple, minZoom: -4, zoomSnap: 0.25, attributionControl: false, boxZoom: false, doubleClickZoom: false });
  map.setView([0, 0], 0);
  let imageLayer = null, maskLayer = null, sessionLayer = null, stale = [], pointLayer = L.layerGroup().addTo(map), promptLayer = L.layerGroup().addTo(map);
  let boxRect = null, strokeLine = null, frame = null;

  const toLatLng = (x, y) => map.unproject([x, y], S.info ? S.info.max_zoom : 0);
  const toPixel = (latlng) => map.project(latlng, S.info ? S.info.max_zoom : 0);
  const insideImage = (p) => S.info && p.x >= 0 && p.y >= 0 && p.x < S.info.width && p.y < S.info.height;
  const opacity = () => Number($('overlay-opacity').value) / 100;
  window.nephroseg.map = map;
  window.nephroseg.imageToContainer = (x, y) => { const p = map.latLngToContainerPoint(toLatLng(x, y)); return [p.x, p.y]; };

  function tiledLayer(route, params, mz, className) {
    const Layer = L.TileLayer.extend({ getTileUrl: (c) => url(route, Object.assign({}, params, { z: c.z, x: c.x, y: c.y })) });
    const b = L.latLngBounds(toLatLng(0, S.info.height), toLatLng(S.info.width, 0));
    return new Layer('', { tileSize: 256, minZoom: -4, maxNativeZoom: mz, minNativeZoom: 0, maxZoom: mz + 4, noWrap: true, bounds: b, keepBuffer: 1, className: className || '' });
  }

  async function openImage(path, keepView) {
    if (keepView && path === S.open && S.info) return S.info;
    const info = await call('info', undefined, { path });
    if (path !== S.open) discardSession();
    S.open = path; S.info = info;
    for (const l of [imageLayer, maskLayer]) if (l) map.removeLayer(l);
    maskLayer = null;
    pointLayer.clearLayers(); promptLayer.clearLayers();
    imageLayer = tiledLayer('tile', { path }, info.max_zoom, 'seamless').addTo(map);
    const b = L.latLngBounds(toLatLng(0, info.height), toLatLng(info.width, 0));
    // Edge tiles are padded (black): a thin frame shows where the image ends.
    if (frame) map.removeLayer(frame);
    frame = L.rectangle(b, { color: '#8a94a3', weight: 1, fill: false, interactive: false }).addTo(map);
    map.setMaxBounds(b.pad(0.5));
    map.fitBounds(b);
    const cal = info.nm_per_pixel ? `${fmt(info.nm_per_pixel, 3)} nm/px (${info.calibration_source})` : 'no calibration (give nm/px when running)';
    const zooms = info.max_zoom ? `, tiles at ${info.max_zoom + 1} zoom levels` : '';
    $('image-info').textContent = `${path}\n${info.format || ''} ${info.width} x ${info.height} px, ${info.data_type}, ${info.channels} ch${zooms}\n${cal}`;
    $('caption-text').textContent = `${path} — ${info.width} x ${info.height} — ${cal}`;
    document.querySelectorAll('.thumb').forEach((t) => t.classList.toggle('open', t.dataset.path === path));
    return info;
  }

  function showMask(path) {
    if (maskLayer) { map.removeLayer(maskLayer); maskLayer = null; }
    if (path && $('show-mask').checked) maskLayer = tiledLayer('tile', { path, style: 'mask', t: Date.now() }, S.info.max_zoom).setOpacity(opacity()).addTo(map);
  }

  // The session's overlay: a new tile layer per mask version, swapped in when its tiles
  // have loaded (no flicker); t0 (performance.now() of the click) gives the latency.
  function refreshSession(t0) {
    if (!S.session) return;
    const layer = tiledLayer('annotate/tile', { session: S.session, v: S.version }, S.info.max_zoom).setOpacity(opacity());
    if (sessionLayer) stale.push(sessionLayer);
    sessionLayer = layer;
    layer.once('load', () => {
      const i = stale.indexOf(layer);
      const old = i >= 0 ? stale.splice(0, i) : stale.splice(0);
      for (const l of old) map.removeLayer(l);
      if (t0 !== undefined) {
        const ms = performance.now() - t0;
        S.latencies.push(ms);
        const sorted = [...S.latencies].sort((a, b) => a - b);
        $('latency').textContent = `click to mask: ${ms.toFixed(0)} ms (last), median ${sorted[Math.floor(sorted.length / 2)].toFixed(0)} ms over ${S.latencies.length} click(s)`;
      }
    });
    layer.addTo(map);
  }
  function removeSessionLayers() {
    for (const l of stale) map.removeLayer(l);
    stale = [];
    if (sessionLayer) { map.removeLayer(sessionLayer); sessionLayer = null; }
  }

  function drawPoints() {
    pointLayer.clearLayers();
    for (const [x, y, label] of S.points)
      L.marker(toLatLng(x, y), { icon: L.divIcon({ className: label ? 'point-pos' : 'point-neg', iconSize: [10, 10] }), interactive: false }).addTo(pointLayer);
    if (boxRect) { map.removeLayer(boxRect); boxRect = null; }
    if (S.box) boxRect = L.rectangle(L.latLngBounds(toLatLng(S.box[0], S.box[1]), toLatLng(S.box[2], S.box[3])), { color: '#ffd479', weight: 2, fill: false, interactive: false }).addTo(map);
    const pos = S.points.filter((p) => p[2]).length;
    $('tool-info').textContent = S.session ? `${pos} + / ${S.points.length - pos} − point(s)${S.box ? ', box' : ''}` : '';
  }

  // ---- annotation (reference and correction) -----------------------------------------
  function setUndoRedo(canUndo, canRedo) { $('undo').disabled = !canUndo; $('redo').disabled = !canRedo; }
  // Drops the annotation session (and leaves correction mode unless keepMode).
  function discardSession(keepMode) {
    if (S.session) call('annotate/close', { session: S.session }, undefined, true).catch(() => {});
    if (S.session && S.dirty) status(`the unsaved mask on ${S.open.slice(S.open.lastIndexOf('/') + 1)} was dropped`, true);
    S.dirty = false;
    S.session = null; S.points = []; S.box = null; S.past = []; S.future = []; S.strokes = [];
    if (S.correcting && !keepMode) { S.correcting = false; updateToolbar(); }
    $('correct').textContent = 'Correct';
    removeSessionLayers(); drawPoints(); setUndoRedo(false, false);
    $('save-correction').disabled = true;
  }
  async function startSession(maskPath) {
    if (!S.open) { status('open an image first (Browse)', true); throw new Error('no image'); }
    const model = $('annotate-model').value;
    discardSession(true);
    const r = await call('annotate/start', { path: S.open, model, mask: maskPath || null });
    S.session = r.session; S.version = r.version;
    drawPoints();
    refreshSession();
    $('annotate-info').textContent = `session ${r.session} on ${S.open} with ${model}${maskPath ? ', from ' + maskPath : ''}`;
    return r;
  }
  async function ensureSession() { if (!S.session) await startSession(S.correcting && currentRow() ? currentRow().mask : undefined); }
  // A session route; a session the server has ended (it keeps 8) is dropped here, so the
  // next click starts a new one instead of failing again.
  async function sessionCall(route, body) {
    try { return await call(route, body); } catch (e) {
      if (/no annotation session/.test(e.message)) {
        S.session = null; S.points = []; S.box = null; S.past = []; S.future = []; S.strokes = [];
        removeSessionLayers(); drawPoints(); setUndoRedo(false, false);
        status('the server had ended this annotation session (it keeps 8): click again to start anew', true);
      }
      throw e;
    }
  }
  function remember() {
    S.past.push({ points: S.points.map((p) => p.slice()), box: S.box && S.box.slice() });
    if (S.past.length > HISTORY) S.past.shift();
    S.future = [];
  }
  function edited() { S.dirty = true; if (S.correcting) $('save-correction').disabled = false; setUndoRedo(true, false); }

  async function click(x, y, label) {
    const t0 = performance.now();
    await ensureSession();
    remember();
    S.points.push([x, y, label]);
    drawPoints();
    await sendClicks(t0);
  }
  async function sendClicks(t0) {
    status('segmenting…');
    const r = await sessionCall('annotate/click', { session: S.session, points: S.points, box: S.box });
    S.version = Math.max(S.version, r.version);
    status(`mask ${r.area} px${r.iou !== null && r.iou !== undefined ? ', predicted IoU ' + r.iou.toFixed(3) : ''}, ${r.ms.toFixed(0)} ms on the server`);
    refreshSession(t0);
    edited();
  }
  async function brush(points, erase) {
    await ensureSession();
    remember();
    const stroke = { points, radius: Number($('brush-radius').value), erase };
    S.strokes.push(stroke);
    const r = await sessionCall('annotate/brush', Object.assign({ session: S.session }, stroke));
    S.version = Math.max(S.version, r.version);
    status(`${erase ? 'erased' : 'painted'}: mask ${r.area} px`);
    refreshSession();
    edited();
  }
  async function undoRedo(which) {
    if (!S.session) return;
    const before = S.version;
    const r = await sessionCall('annotate/' + which, { session: S.session });
    if (r.version !== before) {
      const [from, to] = which === 'undo' ? [S.past, S.future] : [S.future, S.past];
      to.push({ points: S.points, box: S.box });
      const prev = from.pop();
      if (prev) { S.points = prev.points; S.box = prev.box; }
      S.version = r.version;
      refreshSession();
      drawPoints();
      S.dirty = true;
      if (S.correcting) $('save-correction').disabled = false;
    }
    if (!r.can_undo) S.past = [];
    setUndoRedo(r.can_undo, r.can_redo);
    status(r.version !== before ? `${which}: mask ${r.area} px` : `nothing to ${which}`);
  }

  async function saveReference() {
    if (!S.session) { status('nothing to save: click on the image first', true); return; }
    const r = await sessionCall('annotate/save', { session: S.session });
    S.dirty = false;
    const i = S.references.findIndex((x) => x.image === S.open);
    if (i >= 0) S.references[i].mask = r.path; else S.references.push({ image: S.open, mask: r.path });
    status(`saved ${r.path} (${r.area} px); ${S.references.length} reference(s)`);
    renderReferences();
    const dir = S.open.slice(0, S.open.lastIndexOf('/'));
    if (dir === S.folder && !S.masks.has(r.path)) browse(S.folder).catch(() => {});
  }
  function toggleReference(image, mask) {
    const i = S.references.findIndex((x) => x.image === image);
    if (i >= 0) S.references.splice(i, 1); else S.references.push({ image, mask });
    renderReferences();
  }
  function renderReferences() {
    const ul = $('references'); ul.innerHTML = '';
    S.references.forEach((ref, i) => ul.append(el('li', { 'data-image': ref.image }, `${ref.image} + ${ref.mask.slice(ref.mask.lastIndexOf('/') + 1)} `,
      el('button', { onclick: () => { S.references.splice(i, 1); renderReferences(); } }, 'remove'))));
    $('run-references').textContent = S.references.length ? `${S.references.length} reference(s): ${S.references.map((r) => r.image.slice(r.image.lastIndexOf('/') + 1)).join(', ')}` : 'no reference yet: annotate one (step 2) or add a saved one (★ in Browse)';
    document.querySelectorAll('.thumb .ref').forEach((b) => b.classList.toggle('on', S.references.some((r) => r.image === b.dataset.image)));
  }

  // Mouse on the map: points, boxes, strokes.
  let drag = null;
  const editing = () => S.open && (S.step === 'annotate' || S.correcting);
  function cancelDrag() {
    if (!drag) return;
    drag = null;
    map.dragging.enable();
    if (strokeLine) { map.removeLayer(strokeLine); strokeLine = null; }
    drawPoints();
  }
  map.on('mousedown', (e) => {
    if (!editing() || e.originalEvent.button !== 0) return;
    if (S.tool === 'box' || S.tool === 'brush' || S.tool === 'eraser') {
      map.dragging.disable();
      const p = toPixel(e.latlng);
      drag = { start: p, points: [[p.x, p.y]] };
      if (S.tool !== 'box') {
        const w = 2 * Number($('brush-radius').value) * map.getZoomScale(map.getZoom(), S.info.max_zoom);
        strokeLine = L.polyline([e.latlng], { color: S.tool === 'eraser' ? '#d43f3a' : '#ffd479', weight: Math.max(2, w), opacity: 0.6, interactive: false }).addTo(map);
      }
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
      if (strokeLine) strokeLine.addLatLng(e.latlng);
    }
  });
  map.on('mouseup', async (e) => {
    if (!drag) return;
    const d = drag; drag = null;
    map.dragging.enable();
    const p = toPixel(e.latlng);
    try {
      if (S.tool === 'box') {
        const t0 = performance.now();
        const cx = (v) => Math.min(S.info.width - 1, Math.max(0, v)), cy = (v) => Math.min(S.info.height - 1, Math.max(0, v));
        const box = [cx(Math.min(d.start.x, p.x)), cy(Math.min(d.start.y, p.y)), cx(Math.max(d.start.x, p.x)), cy(Math.max(d.start.y, p.y))];
        if (box[2] - box[0] < 2 || box[3] - box[1] < 2) { drawPoints(); return; }
        await ensureSession();
        remember();
        S.box = box;
        drawPoints();
        await sendClicks(t0);
      } else {
        d.points.push([p.x, p.y]);
        await brush(d.points, S.tool === 'eraser');
      }
    } catch (err) { /* shown in the status line */ }
    finally { if (strokeLine) { map.removeLayer(strokeLine); strokeLine = null; } }
  });
  map.on('click', (e) => {
    if (!editing()) return;
    if (S.tool !== 'positive' && S.tool !== 'negative') return;
    const p = toPixel(e.latlng);
    if (!insideImage(p)) return;
    click(p.x, p.y, S.tool === 'positive' ? 1 : 0).catch(() => {});
  });

  function setTool(tool) {
    S.tool = tool;
    document.querySelectorAll('#tools button').forEach((b) => b.classList.toggle('active', b.dataset.tool === tool));
    document.body.classList.toggle('tool-pan', tool === 'pan');
  }
  function updateToolbar() {
    const on = S.step === 'annotate' || S.correcting;
    $('toolbar').hidden = !on;
    document.body.classList.toggle('tools-on', on);
    const top = on ? $('toolbar').offsetHeight + 'px' : '0px';
    if ($('map').style.top !== top) resizeMap(() => { $('map').style.top = top; });
  }
  // Applies a layout change to the viewer; a fully visible image stays fully visible.
  function resizeMap(change) {
    const whole = frame && map.getBounds().contains(frame.getBounds());
    if (change) change();
    map.invalidateSize({ pan: false });
    if (whole) map.fitBounds(frame.getBounds(), { animate: false });
  }
  window.addEventListener('resize', updateToolbar);

  // ---- browse ------------------------------------------------------------------------
  // Image headers for the thumbnails' size and calibration, a few at a time.
  const infoQueue = [];
  let infoRunning = 0;
  function queueInfo(path, done) { infoQueue.push([path, done]); pumpInfo(); }
  function pumpInfo() {
    while (infoRunning < 4 && infoQueue.length) {
      const [path, done] = infoQueue.shift();
      infoRunning++;
      call('info', undefined, { path }, true).then((i) => done(i), () => done(null)).finally(() => { infoRunning--; pumpInfo(); });
    }
  }

  async function browse(path) {
    const r = await call('list', undefined, { path });
    if (path !== S.folder) S.selected = new Set();
    infoQueue.length = 0;
    S.folder = path; S.images = r.images.filter((i) => !isMaskName(i.name));
    S.masks = new Set(r.images.filter((i) => isMaskName(i.name)).map((i) => i.path));
    const crumbs = $('crumbs'); crumbs.innerHTML = '';
    const parts = path.split('/');
    parts.forEach((p, i) => {
      const target = parts.slice(0, i + 1).join('/');
      crumbs.append(el('a', { onclick: () => browse(target).catch(() => {}) }, p), i < parts.length - 1 ? ' / ' : '');
    });
    const folders = $('folders'); folders.innerHTML = '';
    if (r.parent) folders.append(el('div', { onclick: () => browse(r.parent).catch(() => {}) }, '⬑ ..'));
    for (const f of r.folders) {
      const row = el('div', { class: f.is_run ? 'run' : '', 'data-path': f.path, title: f.is_run ? 'a GBMSeg run: review it' : 'open the folder', onclick: () => browse(f.path).catch(() => {}) }, (f.is_run ? '▤ ' : '▸ ') + f.name);
      if (f.is_run) row.append(' ', el('button', { onclick: (ev) => { ev.stopPropagation(); openRun(f.path).catch(() => {}); } }, 'review'));
      folders.append(row);
    }
    const grid = $('images'); grid.innerHTML = '';
    if (!r.images.length) grid.append(el('p', { class: 'hint' }, r.folders.length ? 'no micrographs here: open a folder' : 'no micrographs here (PNG, JPEG, TIFF, DM3/DM4)'));
    for (const img of r.images) {
      const mask = isMaskName(img.name);
      const meta = el('div', { class: 'meta', title: `${img.bytes} bytes` }, `${(img.bytes / 1024).toFixed(0)} KB`);
      const t = el('div', { class: 'thumb' + (mask ? ' mask-file' : ''), 'data-path': img.path, title: mask ? 'a saved mask' : img.name, onclick: () => openImage(img.path).catch(() => {}) });
      if (!mask) {
        const box = el('input', { type: 'checkbox', title: 'select as a GBMSeg target' });
        box.checked = S.selected.has(img.path);
        t.classList.toggle('selected', box.checked);
        box.addEventListener('click', (ev) => { ev.stopPropagation(); box.checked ? S.selected.add(img.path) : S.selected.delete(img.path); t.classList.toggle('selected', box.checked); updateSelection(); });
        t.append(box);
        const saved = maskPathOf(img.path);
        if (S.masks.has(saved)) t.append(el('button', { class: 'ref', 'data-image': img.path, title: 'use this image and its saved mask as a reference', onclick: (ev) => { ev.stopPropagation(); toggleReference(img.path, saved); } }, '★'));
      }
      t.append(el('img', { src: url('thumb', { path: img.path }), loading: 'lazy', alt: img.name }), el('div', { class: 'name' }, img.name), meta);
      grid.append(t);
      if (!mask) queueInfo(img.path, (i) => {
        meta.textContent = i ? `${i.width}x${i.height} · ${i.data_type} · ${i.nm_per_pixel ? fmt(i.nm_per_pixel, 2) + ' nm/px (' + i.calibration_source + ')' : 'uncalibrated'}` : 'unreadable';
      });
    }
    if (S.open) document.querySelectorAll('.thumb').forEach((t) => t.classList.toggle('open', t.dataset.path === S.open));
    renderReferences();
    updateSelection();
    if (!$('run-out').value || $('run-out').dataset.auto === '1') { $('run-out').value = path + '/gbmseg-run'; $('run-out').dataset.auto = '1'; }
  }
  function updateSelection() {
    $('selection-count').textContent = S.selected.size ? `${S.selected.size} selected` : '';
    const n = runTargets().length;
    $('run-targets').textContent = S.selected.size ? `targets: the ${n} selected image(s)` : `targets: all ${n} image(s) of ${S.folder || '?'} but the references (select some in Browse to run fewer)`;
  }
  function runTargets() {
    if (S.selected.size) return [...S.selected];
    const refs = new Set(S.references.map((r) => r.image));
    return S.images.map((i) => i.path).filter((p) => !refs.has(p));
  }

  // ---- run ---------------------------------------------------------------------------
  async function startRun() {
    if (!S.references.length) { status('annotate and save a reference first (step 2)', true); return; }
    const targets = runTargets();
    if (!targets.length) { status('no target images: select some in Browse', true); return; }
    const nm = $('run-nm').value.trim();
    if (nm && !(Number(nm) > 0)) { status('the pixel size must be a positive number of nm/px, or empty', true); return; }
    const body = {
      references: S.references, targets, out: $('run-out').value.trim(),
      features: $('run-features').value, segmenter: $('run-segmenter').value,
      precision: $('run-precision').value, preset: $('run-preset').value,
      ground_truth: $('run-truth').value.trim() || null,
      nm_per_pixel: nm ? Number(nm) : 'auto', overwrite: $('run-overwrite').checked,
      reference_range: $('run-range').value,
    };
    $('run-start').disabled = true;
    const r = await call('gbmseg/run', body);
    S.job = r.job;
    $('run-cancel').disabled = false;
    $('run-progress').max = r.total || targets.length || 1; $('run-progress').value = 0;
    $('run-state').textContent = `started ${r.job}: ${targets.length} target(s) into ${r.out || body.out}`;
    pollJob();
  }
  let pollFailures = 0;
  async function pollJob() {
    if (!S.job) return;
    let j;
    try { j = await call('jobs/' + S.job, undefined, undefined, true); pollFailures = 0; } catch (e) {
      if (++pollFailures < 20) { setTimeout(pollJob, 1000); return; }
      status('lost the job: ' + e.message, true); S.job = null; $('run-cancel').disabled = true; $('run-start').disabled = false; return;
    }
    $('run-progress').max = j.total || 1; $('run-progress').value = j.done || 0;
    const lines = j.rows.map((r) => `${r.status === 'ok' ? '✓' : r.status} ${r.name}  ${r.dice !== undefined && r.dice !== null ? 'Dice ' + fmt(r.dice) + '  ' : ''}${r.thickness_oi_harmonic_3d_nm ? fmt(r.thickness_oi_harmonic_3d_nm, 0) + ' nm ' + (r.thickness_class || '') : ''}${r.message ? '  ' + r.message : ''}`);
    $('run-state').textContent = `${j.state}: ${j.done} / ${j.total}${j.error ? '\n' + j.error : ''}\n` + lines.join('\n');
    if (j.state === 'running' || j.state === 'cancelling') { setTimeout(pollJob, 500); return; }
    S.job = null;
    $('run-cancel').disabled = true; $('run-start').disabled = false;
    const skipped = j.rows.filter((r) => r.status === 'skipped').length, failed = j.rows.filter((r) => r.status !== 'ok' && r.status !== 'skipped').length;
    status(`GBMSeg ${j.state}: ${j.rows.length} row(s)${failed ? ', ' + failed + ' failed' : ''}${skipped ? ', ' + skipped + ' skipped (results already there: tick overwrite)' : ''}`, j.state === 'failed');
    if (j.state === 'done' || (j.state === 'cancelled' && j.rows.length)) { $('review-path').value = j.out; await openRun(j.out); }
  }

  // ---- review ------------------------------------------------------------------------
  async function openRun(path) {
    const r = await call('run', undefined, { path });
    S.run = r; S.rows = r.rows; S.current = -1;
    $('review-path').value = path;
    if (!S.sortKey || !S.rows.some((x) => x[S.sortKey] !== undefined)) {
      S.sortKey = r.with_ground_truth ? 'dice' : (r.measured ? 'thickness_oi_harmonic_3d_nm' : 'n_pos'); S.sortAsc = true;
    }
    sortRows(); renderTable(); renderGrid(); setStep('review');
    updateExport();
    if (S.rows.length) await selectTarget(0); else status('this run has no rows yet', true);
  }
  function sortRows() {
    const k = S.sortKey, dir = S.sortAsc ? 1 : -1;
    S.rows.sort((a, b) => {
      const x = a[k], y = b[k];
      const nx = x === null || x === undefined || x === '', ny = y === null || y === undefined || y === '';
      if (nx || ny) return nx && ny ? 0 : nx ? 1 : -1;  // empty cells last either way
      return (x < y ? -1 : x > y ? 1 : 0) * dir;
    });
  }
  const COLUMNS = [['name', 'target'], ['dice', 'Dice'], ['thickness_oi_harmonic_3d_nm', 'OI nm'], ['thickness_direct_median_nm', 'med. nm'], ['thickness_class', 'class'], ['n_pos', '+'], ['n_neg', '−'], ['review', '✓✗'], ['edited', '✎']];
  const COLUMN_TITLES = { thickness_oi_harmonic_3d_nm: 'harmonic-mean orthogonal intercept × 8/(3π), nm', thickness_direct_median_nm: 'direct median thickness, nm', n_pos: 'positive prompts', n_neg: 'negative prompts', review: 'accepted / rejected', edited: 'corrected by hand' };
  function sortBy(k) {
    S.sortAsc = S.sortKey === k ? !S.sortAsc : true; S.sortKey = k;
    const name = currentRow() && currentRow().name;
    sortRows(); renderTable(); renderGrid();
    S.current = S.rows.findIndex((r) => r.name === name); highlight();
  }
  function renderTable() {
    const t = $('review-table'); t.innerHTML = '';
    const cols = COLUMNS.filter(([k]) => S.rows.some((r) => r[k] !== undefined));
    t.append(el('tr', {}, ...cols.map(([k, label]) => el('th', { 'data-key': k, title: `${COLUMN_TITLES[k] || k}: click to sort, again to reverse`, onclick: () => sortBy(k) }, label + (S.sortKey === k ? (S.sortAsc ? ' ▲' : ' ▼') : '')))));
    S.rows.forEach((r, i) => t.append(el('tr', { 'data-name': r.name, class: (r.review || '') + (r.status && r.status !== 'ok' && r.status !== 'skipped' ? ' failed' : ''), title: r.message || '', onclick: () => selectTarget(i).catch(() => {}) },
      ...cols.map(([k]) => el('td', {}, k === 'edited' ? (r[k] ? '✎' : '') : k === 'review' ? (r[k] === 'accepted' ? '✓' : r[k] === 'rejected' ? '✗' : '') : fmt(r[k], k === 'dice' ? 3 : 1))))));
    highlight();
    const acc = S.rows.filter((r) => r.review === 'accepted').length, rej = S.rows.filter((r) => r.review === 'rejected').length, ed = S.rows.filter((r) => r.edited).length;
    const m = S.run && S.run.mean;
    $('review-summary').textContent = `${S.rows.length} target(s): ${acc} accepted, ${rej} rejected, ${ed} corrected` +
      (m && m.thickness_oi_harmonic_3d_nm ? `\nmean OI·8/3π ${fmt(m.thickness_oi_harmonic_3d_nm, 1)} nm` : '') + (m && m.dice !== undefined && m.dice !== null ? `, mean Dice ${fmt(m.dice)}` : '');
  }
  function renderGrid() {
    const g = $('review-grid'); g.innerHTML = '';
    S.rows.forEach((r, i) => g.append(el('div', { class: 'thumb', 'data-name': r.name, onclick: () => selectTarget(i).catch(() => {}) },
      el('img', { src: r.overlay ? url('file', { path: r.overlay, t: r.edited ? Date.now() : 0 }) : url('thumb', { path: r.image }), alt: r.name, loading: 'lazy' }), el('div', { class: 'name' }, (r.review === 'accepted' ? '✓ ' : r.review === 'rejected' ? '✗ ' : '') + r.name),
      el('div', { class: 'meta' }, (r.dice !== undefined && r.dice !== null ? 'Dice ' + fmt(r.dice) + ' · ' : '') + (r.thickness_oi_harmonic_3d_nm ? fmt(r.thickness_oi_harmonic_3d_nm, 0) + ' nm' : '')))));
    highlight();
  }
  const currentRow = () => S.rows[S.current];
  function highlight() {
    document.querySelectorAll('#review-table tr[data-name]').forEach((tr, i) => { tr.classList.toggle('current', i === S.current); if (i === S.current) tr.scrollIntoView({ block: 'nearest' }); });
    document.querySelectorAll('#review-grid .thumb').forEach((t, i) => t.classList.toggle('open', i === S.current));
  }
  async function selectTarget(i) {
    if (i < 0 || i >= S.rows.length) return;
    if (S.correcting) discardSession();
    S.current = i;
    highlight();
    const r = currentRow();
    $('target-panel').hidden = false;
    $('target-name').textContent = r.name;
    if (r.image) { await openImage(r.image, true); showMask(r.mask); drawPrompts(); }
    const rows = [['status', r.status], ['message', r.message], ['Dice', fmt(r.dice)], ['prompts +/−', `${fmt(r.n_pos)} / ${fmt(r.n_neg)}`],
      ['pixel size', r.nm_per_pixel ? fmt(r.nm_per_pixel, 3) + ' nm (' + r.calibration_source + ')' : ''],
      ['OI harmonic × 8/(3π)', r.thickness_oi_harmonic_3d_nm !== undefined ? fmt(r.thickness_oi_harmonic_3d_nm, 1) + ' nm' : ''],
      ['direct median / mean', r.thickness_direct_median_nm !== undefined ? `${fmt(r.thickness_direct_median_nm, 1)} / ${fmt(r.thickness_direct_mean_nm, 1)} nm` : ''],
      ['class', r.thickness_class], ['note', r.thickness_note], ['review', r.review], ['edited', r.edited ? 'yes (original kept as .auto.png)' : 'no']];
    const t = $('target-numbers'); t.innerHTML = '';
    for (const [k, v] of rows) if (v !== undefined && v !== null && v !== '') t.append(el('tr', {}, el('td', {}, k), el('td', { 'data-field': k }, v)));
    const img = $('thickness-map');
    if (r.thickness_map) {
      const src = url('file', { path: r.thickness_map, t: Date.now() });
      img.hidden = false; img.src = src; $('thickness-map-link').href = src;
    } else { img.hidden = true; img.removeAttribute('src'); $('thickness-map-link').removeAttribute('href'); }
  }
  function drawPrompts() {
    promptLayer.clearLayers();
    const r = currentRow();
    if (!r || !r.prompts || !$('show-prompts').checked || S.step !== 'review') return;
    for (const [key, cls] of [['positive', 'point-pos'], ['negative', 'point-neg']])
      for (const [x, y] of r.prompts[key] || []) L.marker(toLatLng(x, y), { icon: L.divIcon({ className: cls, iconSize: [9, 9] }), interactive: false }).addTo(promptLayer);
  }
  async function markTarget(review) {
    const r = currentRow(); if (!r) return;
    const value = r.review === review ? '' : review;
    await call('review/mark', { run: S.run.path, name: r.name, review: value });
    r.review = value;
    status(value ? `${r.name} ${value}` : `${r.name}: mark removed`);
    renderTable(); renderGrid();
    if (value && $('advance').checked && S.current + 1 < S.rows.length) await selectTarget(S.current + 1);
    else await selectTarget(S.current);
  }
  async function correct() {
    const r = currentRow(); if (!r) { status('open a run and pick a target first (Review)', true); return; }
    if (S.correcting) { discardSession(); showMask(r.mask); drawPrompts(); status('correction discarded'); return; }
    S.correcting = true;
    updateToolbar();
    showMask(null);
    promptLayer.clearLayers();
    try { await startSession(r.mask); } catch (e) { S.correcting = false; updateToolbar(); showMask(r.mask); throw e; }
    $('correct').textContent = 'Discard';
    $('save-correction').disabled = true;
    status('correcting: click, box or brush (tools above the image), then Save correction (S)');
  }
  async function saveCorrection() {
    const r = currentRow(); if (!r || !S.session || !S.correcting) return;
    status('saving and measuring again…');
    const res = await sessionCall('review/save', { run: S.run.path, name: r.name, session: S.session });
    Object.assign(r, res.row);
    S.dirty = false;
    discardSession();
    status(`saved the correction of ${r.name}; measured again: ${fmt(r.thickness_oi_harmonic_3d_nm, 1)} nm`);
    renderTable(); renderGrid(); await selectTarget(S.current);
  }
  function updateExport() {
    document.querySelectorAll('#export-links a').forEach((a) => a.classList.toggle('disabled', !S.run));
    if (!S.run) { $('export-run').textContent = 'open a run first (Review, or a ▤ folder in Browse)'; return; }
    const acc = S.rows.filter((r) => r.review === 'accepted').length, rej = S.rows.filter((r) => r.review === 'rejected').length, ed = S.rows.filter((r) => r.edited).length;
    const open = S.rows.length - acc - rej;
    $('export-run').textContent = `run: ${S.run.path}\n${S.rows.length} target(s): ${acc} accepted, ${rej} rejected, ${ed} corrected` + (open ? `\n${open} not reviewed yet` : '');
    $('export-csv').href = url('export/summary.csv', { run: S.run.path });
    $('export-report').href = url('export/report', { run: S.run.path });
    $('export-zip').href = url('export/masks.zip', { run: S.run.path });
  }

  // ---- steps, keys, start --------------------------------------------------------------
  function setStep(step) {
    if (S.correcting && step !== 'review') discardSession();
    S.step = step;
    document.body.className = document.body.className.replace(/\bstep-\w+/g, '').trim() + ' step-' + step;
    document.querySelectorAll('#steps button').forEach((b) => b.classList.toggle('active', b.dataset.step === step));
    document.querySelectorAll('#left section').forEach((s) => { s.hidden = s.dataset.panel !== step; });
    $('target-panel').hidden = step !== 'review' || S.current < 0;
    resizeMap();
    updateToolbar();
    drawPrompts();
    if (step === 'review' && S.current >= 0 && currentRow() && S.open !== currentRow().image) selectTarget(S.current).catch(() => {});
    if (step !== 'review') { if (maskLayer) { map.removeLayer(maskLayer); maskLayer = null; } }
    else if (currentRow() && !S.correcting && !maskLayer) showMask(currentRow().mask);
    if (step === 'run') { renderReferences(); updateSelection(); }
    if (step === 'export') updateExport();
  }
  function setOpacity() { for (const l of [maskLayer, sessionLayer, ...stale]) if (l) l.setOpacity(opacity()); }
  function bumpRadius(d) { const r = $('brush-radius'); r.value = Math.max(1, Math.min(60, Number(r.value) + d)); r.dispatchEvent(new Event('input')); }
  document.querySelectorAll('#steps button').forEach((b) => b.addEventListener('click', () => setStep(b.dataset.step)));
  document.querySelectorAll('#tools button').forEach((b) => b.addEventListener('click', () => setTool(b.dataset.tool)));
  $('brush-radius').addEventListener('input', () => { $('brush-radius-value').textContent = $('brush-radius').value; });
  $('overlay-opacity').addEventListener('input', setOpacity);
  // MedSAM takes a box only; the weight-free point segmenter points only (the server says
  // the same with a 400): the tools the model cannot use are disabled.
  function modelTools() {
    const m = S.models.find((x) => x.name === $('annotate-model').value);
    const kind = m ? m.kind : '';
    $('tool-positive').disabled = $('tool-negative').disabled = kind === 'medsam';
    $('tool-box').disabled = kind === 'classical';
    if (kind === 'medsam' && (S.tool === 'positive' || S.tool === 'negative')) setTool('box');
    if (kind === 'classical' && S.tool === 'box') setTool('positive');
  }
  $('annotate-model').addEventListener('change', () => {
    modelTools();
    if (S.session && !S.correcting) { discardSession(); status('model changed: the next click starts a new mask'); }
  });
  $('undo').onclick = () => undoRedo('undo').catch(() => {});
  $('redo').onclick = () => undoRedo('redo').catch(() => {});
  $('clear-points').onclick = () => { if (S.points.length || S.box) remember(); S.points = []; S.box = null; drawPoints(); status('clicks cleared: the next click starts a new prompt (the mask stays until then)'); };
  $('save-reference').onclick = () => saveReference().catch(() => {});
  $('select-all').onclick = () => { S.images.forEach((i) => S.selected.add(i.path)); document.querySelectorAll('#images .thumb input').forEach((b) => { b.checked = true; b.parentElement.classList.add('selected'); }); updateSelection(); };
  $('select-none').onclick = () => { S.selected.clear(); document.querySelectorAll('#images .thumb input').forEach((b) => { b.checked = false; b.parentElement.classList.remove('selected'); }); updateSelection(); };
  $('run-out').addEventListener('input', () => { $('run-out').dataset.auto = '0'; });
  $('run-start').onclick = () => startRun().catch(() => { $('run-start').disabled = false; });
  $('run-cancel').onclick = () => { if (S.job) call(`jobs/${S.job}/cancel`, {}).then(() => status('cancelling after the current target…')).catch(() => {}); };
  $('review-open').onclick = () => openRun($('review-path').value.trim()).catch(() => {});
  $('review-path').addEventListener('keydown', (e) => { if (e.key === 'Enter') openRun($('review-path').value.trim()).catch(() => {}); });
  $('show-prompts').onchange = drawPrompts;
  $('show-mask').onchange = () => showMask(currentRow() && !S.correcting && S.step === 'review' ? currentRow().mask : null);
  const toggleGrid = () => { $('review-grid').hidden = !$('review-grid').hidden; $('review-table-wrap').hidden = !$('review-grid').hidden; $('review-grid-toggle').textContent = $('review-grid').hidden ? 'Grid' : 'Table'; };
  $('review-grid-toggle').onclick = toggleGrid;
  $('accept').onclick = () => markTarget('accepted').catch(() => {});
  $('reject').onclick = () => markTarget('rejected').catch(() => {});
  $('next-target').onclick = () => selectTarget(S.current + 1).catch(() => {});
  $('prev-target').onclick = () => selectTarget(S.current - 1).catch(() => {});
  $('correct').onclick = () => correct().catch(() => {});
  $('save-correction').onclick = () => saveCorrection().catch(() => {});
  $('help-button').onclick = () => { $('help').hidden = false; };
  $('help-close').onclick = () => { $('help').hidden = true; };
  $('help').addEventListener('click', (e) => { if (e.target === $('help')) $('help').hidden = true; });

  document.addEventListener('keydown', (e) => {
    if (e.target.tagName === 'INPUT' && e.target.type !== 'checkbox' && e.target.type !== 'range') return;
    if (e.target.tagName === 'SELECT' || e.target.tagName === 'TEXTAREA') return;
    const k = e.key.toLowerCase();
    if ((e.ctrlKey || e.metaKey) && k === 'z') { e.preventDefault(); undoRedo(e.shiftKey ? 'redo' : 'undo').catch(() => {}); return; }
    if ((e.ctrlKey || e.metaKey) && k === 'y') { e.preventDefault(); undoRedo('redo').catch(() => {}); return; }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const review = S.step === 'review';
    const actions = {
      p: () => !$('tool-positive').disabled && setTool('positive'), n: () => !$('tool-negative').disabled && setTool('negative'), b: () => !$('tool-box').disabled && setTool('box'), r: () => setTool('brush'), e: () => setTool('eraser'), h: () => setTool('pan'),
      '[': () => bumpRadius(-1), ']': () => bumpRadius(1),
      s: () => (S.correcting ? saveCorrection() : S.step === 'annotate' ? saveReference() : Promise.resolve()).catch(() => {}),
      j: () => review && selectTarget(S.current + 1).catch(() => {}), k: () => review && selectTarget(S.current - 1).catch(() => {}),
      arrowdown: () => review && selectTarget(S.current + 1).catch(() => {}), arrowup: () => review && selectTarget(S.current - 1).catch(() => {}),
      a: () => review && markTarget('accepted').catch(() => {}), x: () => review && markTarget('rejected').catch(() => {}),
      c: () => review && correct().catch(() => {}), o: () => { $('show-prompts').checked = !$('show-prompts').checked; drawPrompts(); },
      m: () => { $('show-mask').checked = !$('show-mask').checked; $('show-mask').onchange(); }, g: () => review && toggleGrid(),
      '?': () => { $('help').hidden = !$('help').hidden; }, escape: () => { $('help').hidden = true; cancelDrag(); },
      1: () => setStep('browse'), 2: () => setStep('annotate'), 3: () => setStep('run'), 4: () => setStep('review'), 5: () => setStep('export'),
    };
    if ((k === 'arrowdown' || k === 'arrowup') && !review) return;  // Leaflet pans with the arrows
    if (actions[k]) { e.preventDefault(); actions[k](); }
  });

  async function start() {
    const [roots, models] = await Promise.all([call('roots'), call('models')]);
    S.models = models.models;
    const sam = S.models.filter((m) => m.kind === 'sam' || m.kind === 'medsam' || m.kind === 'classical');
    $('annotate-model').innerHTML = '';
    const label = (m) => m.kind === 'classical' ? `${m.name} (weight-free)` : `${m.name} (${m.kind}${m.type ? ' ' + m.type : ''})`;
    sam.forEach((m) => $('annotate-model').append(el('option', { value: m.name }, label(m))));
    const feats = S.models.filter((m) => m.kind === 'dinov2' || m.kind === 'classical');
    const segs = S.models.filter((m) => m.kind === 'sam' || m.kind === 'medsam' || m.kind === 'classical');
    feats.forEach((m) => $('run-features').append(el('option', { value: m.name }, label(m))));
    segs.forEach((m) => $('run-segmenter').append(el('option', { value: m.name }, label(m))));
    models.precisions.forEach((p) => $('run-precision').append(el('option', { value: p }, p)));
    models.presets.forEach((p) => $('run-preset').append(el('option', { value: p }, p)));
    (models.reference_ranges || []).forEach((r) => $('run-range').append(el('option', { value: r.id }, `${r.id}: ${fmt(r.low_nm, 0)}-${fmt(r.high_nm, 0)} nm (${r.population})`)));
    if (models.default_reference_range) $('run-range').value = models.default_reference_range;
    document.title = `nephroseg workbench ${roots.version || ''}`.trim();
    modelTools();
    setStep('browse');
    renderReferences();
    if (roots.roots.length) await browse(roots.roots[0].path);
    else status('this server shows no folders: start it with --root DIR', true);
    window.nephroseg.ready = true;
  }
  Object.assign(window.nephroseg, { browse, openImage, openRun, selectTarget, setStep, setTool, toggleReference });
  start().catch((e) => status(String(e.message || e), true));
})();
