// CDP console page: plain JS, no build step, talks only to the console's HTTP API (relative URLs, so it
// also works behind a gateway under a path prefix). Every value from the API is inserted as text
// (textContent / DOM nodes), never as HTML.
"use strict";

const state = {
  token: sessionStorage.getItem("cdp-token"),
  me: null,
  catalog: null,
  where: { all: [] },        // the segment condition, in the conf/segments format
  lastPreview: null,
  previewSeq: 0,
};

// ---------------------------------------------------------------------------------------------------- helpers
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "value") el.value = v;
    else if (k === "checked") el.checked = !!v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c !== null && c !== undefined)
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}
const $ = (id) => document.getElementById(id);
const fmt = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("zh-CN"));
function fill(id, ...nodes) { const el = $(id); el.replaceChildren(...nodes.flat()); return el; }

function showError(message) {
  const el = $("error");
  if (!message) { el.hidden = true; el.textContent = ""; return; }
  el.hidden = false; el.textContent = message;
}

async function api(method, path, body, raw) {
  const headers = { "Content-Type": "application/json" };
  if (state.token) headers.Authorization = "Bearer " + state.token;
  const res = await fetch("api/" + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 401 && path !== "auth/login") { signedOut(); throw new Error("请重新登录 Please sign in again"); }
  if (!res.ok) {
    let detail = res.statusText;
    try { const j = await res.json(); detail = typeof j.detail === "string" ? j.detail : JSON.stringify(j.detail); } catch (e) { /* keep */ }
    const err = new Error(detail); err.status = res.status; throw err;
  }
  return raw ? res : res.json();
}

function can(permission) { return !!(state.me && state.me.permissions.includes(permission)); }

// ------------------------------------------------------------------------------------------------- sign in / nav
function signedOut() {
  state.token = null; state.me = null; sessionStorage.removeItem("cdp-token");
  location.hash = "#/login"; route();
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  try {
    const res = await api("POST", "auth/login", { username: form.get("username"), password: form.get("password") });
    state.token = res.token; sessionStorage.setItem("cdp-token", res.token);
    state.me = res; showError("");
    location.hash = "#/segments"; route();
  } catch (e) { showError("登录失败 Sign-in failed: " + e.message); }
});
$("logout").addEventListener("click", async () => { try { await api("POST", "auth/logout"); } catch (e) { /* gone */ } signedOut(); });

async function route() {
  const page = (location.hash.replace(/^#\//, "") || "segments").split("?")[0];
  if (!state.token) return show("login");
  if (!state.me) {
    try { state.me = await api("GET", "me"); } catch (e) { return show("login"); }
  }
  $("topbar").hidden = false;
  $("who").textContent = `${state.me.username} · ${state.me.role}`;
  for (const opt of document.querySelectorAll("[data-needs]")) opt.disabled = !can(opt.dataset.needs);
  for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("active", a.getAttribute("href") === "#/" + page);
  if (page === "profile") { show("profile"); }
  else if (page === "overview") { show("overview"); loadOverview(); }
  else { show("segments"); await loadBuilder(); }
}
function show(name) {
  for (const p of document.querySelectorAll(".page")) p.hidden = p.id !== "page-" + name;
  if (name === "login") $("topbar").hidden = true;
}
window.addEventListener("hashchange", route);

// ------------------------------------------------------------------------------------------------ the builder
const LEAVES = {
  bought: { label: "买过 bought", make: () => ({ bought: { sku: firstSku(), within_days: 180 } }) },
  never_bought: { label: "没买过 never bought", make: () => ({ never_bought: { sku: firstSku(), within_days: 180 } }) },
  no_purchase_within_days: { label: "近N天未购 no purchase", make: () => ({ no_purchase_within_days: 90 }) },
  tag: { label: "标签 tag", make: () => ({ tag: (state.catalog.tags[0] || "") }) },
  attribute: { label: "属性 attribute", make: () => ({ attribute: { name: "has_app", eq: false } }) },
  lifecycle: { label: "生命周期 lifecycle", make: () => ({ lifecycle: ["active"] }) },
  rfm: { label: "RFM 分层", make: () => ({ rfm: ["Champions"] }) },
  model: { label: "模型 model grade", make: () => ({ model: { name: firstModel(), grade: "high" } }) },
  membership: { label: "会员 membership", make: () => ({ membership: { is_paid_member: true } }) },
};
function firstSku() { const s = state.catalog.skus[0]; return s ? s.sku_id : ""; }
function firstModel() { const m = state.catalog.models[0]; return m ? m.model : "churn"; }
const keyOf = (cond) => Object.keys(cond)[0];

async function loadBuilder() {
  if (!state.catalog) {
    try { state.catalog = await api("GET", "catalog"); } catch (e) { return showError(e.message); }
  }
  await loadSavedList();
  renderBuilder();
}

async function loadSavedList(selected) {
  const res = await api("GET", "segments");
  const sel = $("saved-segments");
  sel.replaceChildren(h("option", { value: "" }, "— 新建 new —"),
    ...res.segments.map((s) => h("option", { value: s.name }, s.label ? `${s.name} · ${s.label}` : s.name)));
  if (selected) sel.value = selected;
}

$("saved-segments").addEventListener("change", async (ev) => {
  const name = ev.target.value;
  if (!name) { state.where = { all: [] }; $("seg-name").value = ""; $("seg-label").value = ""; renderBuilder(); return; }
  try {
    const res = await api("GET", "segments/" + encodeURIComponent(name));
    const w = res.definition.where;
    state.where = (keyOf(w) === "all" || keyOf(w) === "any") ? w : { all: [w] };
    $("seg-name").value = name; $("seg-label").value = res.definition.label || "";
    renderBuilder();
  } catch (e) { showError(e.message); }
});

function renderBuilder() {
  fill("builder", renderGroup(state.where, (next) => { state.where = next; }, true));
  changed();
}

// A group {all|any: [...]}; `replace` swaps this node in its parent.
function renderGroup(group, replace, isRoot) {
  const op = keyOf(group);
  const items = group[op];
  const box = h("div", { class: "group", "data-testid": isRoot ? "root-group" : "group" });
  const opSel = h("select", { "data-testid": "group-op", onchange: (e) => {
    const next = { [e.target.value]: items }; replace(next); renderBuilder(); } },
    h("option", { value: "all", selected: op === "all" }, "全部满足 ALL (AND)"),
    h("option", { value: "any", selected: op === "any" }, "任一满足 ANY (OR)"));
  const adder = h("select", { "data-testid": "add-condition", onchange: (e) => {
    const kind = e.target.value; e.target.value = "";
    if (!kind) return;
    items.push(kind === "group" ? { any: [] } : LEAVES[kind].make());
    renderBuilder(); } },
    h("option", { value: "" }, "+ 添加条件 add condition…"),
    ...Object.entries(LEAVES).map(([k, v]) => h("option", { value: k }, v.label)),
    h("option", { value: "group" }, "( ) 条件组 group (AND/OR)"));
  box.append(h("div", { class: "row" }, opSel, adder,
    isRoot ? null : h("button", { class: "link", title: "remove", onclick: () => { replace(null); renderBuilder(); } }, "✕")));
  items.forEach((item, i) => {
    const set = (next) => { if (next === null) items.splice(i, 1); else items[i] = next; };
    box.append(renderItem(item, set));
  });
  if (!items.length) box.append(h("p", { class: "note" }, "还没有条件 No condition yet: everyone matches once you add one."));
  return box;
}

// One item of a group: a leaf, a nested group, or {not: ...} around either.
function renderItem(item, set) {
  const negated = keyOf(item) === "not";
  const inner = negated ? item.not : item;
  const setInner = (next) => set(next === null ? null : (negated ? { not: next } : next));
  const notBox = h("label", { class: "check", title: "NOT" }, h("input", { type: "checkbox", checked: negated,
    "data-testid": "not-toggle", onchange: (e) => { set(e.target.checked ? { not: inner } : inner); renderBuilder(); } }), "NOT");
  const k = keyOf(inner);
  if (k === "all" || k === "any") {
    const g = renderGroup(inner, setInner, false);
    if (negated) g.classList.add("neg");
    g.firstChild.prepend(notBox);
    return g;
  }
  const row = h("div", { class: "cond" + (negated ? " neg" : ""), "data-testid": "condition", "data-kind": k });
  row.append(notBox, h("span", { class: "kind" }, (LEAVES[k] || { label: k }).label));
  row.append(...leafEditor(inner, k));
  row.append(h("button", { class: "link", title: "remove", "data-testid": "remove-condition",
    onclick: () => { setInner(null); renderBuilder(); } }, "✕"));
  return row;
}

function numberInput(value, onset, attrs) {
  return h("input", { type: "number", min: 1, value: value ?? "", ...attrs,
    oninput: (e) => { onset(e.target.value === "" ? undefined : Number(e.target.value)); changed(); } });
}
function select(options, value, onset, attrs) {
  return h("select", { ...attrs, onchange: (e) => { onset(e.target.value); changed(); } },
    ...options.map(([v, label]) => h("option", { value: v, selected: String(v) === String(value) }, label)));
}
function checks(all, chosen, onset, testid) {
  return h("span", { class: "chips", "data-testid": testid }, ...all.map((v) => h("label", { class: "check" },
    h("input", { type: "checkbox", value: v, checked: chosen.includes(v), onchange: (e) => {
      const next = e.target.checked ? [...chosen, v] : chosen.filter((x) => x !== v);
      chosen.splice(0, chosen.length, ...next); onset(chosen); changed(); } }), v)));
}

function leafEditor(cond, k) {
  const cat = state.catalog;
  if (k === "bought" || k === "never_bought") {
    const spec = cond[k];
    const by = spec.category !== undefined ? "category" : "sku";
    const values = by === "sku" ? cat.skus.map((s) => [s.sku_id, `${s.sku_name || s.sku_id} (${s.sku_id})`])
                                : cat.categories.map((c) => [c, c]);
    const current = spec[by];
    if (current && !values.some(([v]) => v === current)) values.unshift([current, current]);
    const out = [
      select([["sku", "商品 SKU"], ["category", "品类 category"]], by, (v) => {
        delete spec.sku; delete spec.category;
        spec[v] = v === "sku" ? firstSku() : (cat.categories[0] || ""); renderBuilder(); }, { "data-testid": "bought-by" }),
      select(values, current, (v) => { spec[by] = v; }, { "data-testid": "bought-value" }),
      h("span", {}, "近 within"), numberInput(spec.within_days, (v) => { if (v) spec.within_days = v; else delete spec.within_days; },
        { "data-testid": "within-days" }), h("span", {}, "天 days"),
      select([["", "任意渠道 any channel"], ...cat.channels.map((c) => [c, c])], spec.channel || "",
        (v) => { if (v) spec.channel = v; else delete spec.channel; }, { "data-testid": "bought-channel" }),
    ];
    if (k === "bought") out.push(h("span", {}, "≥"), numberInput(spec.min_times || 1,
      (v) => { if (v && v > 1) spec.min_times = v; else delete spec.min_times; }, { "data-testid": "min-times" }), h("span", {}, "次 times"));
    return out;
  }
  if (k === "no_purchase_within_days") {
    return [numberInput(cond[k], (v) => { cond[k] = v || 1; }, { "data-testid": "days" }), h("span", {}, "天 days")];
  }
  if (k === "tag") {
    const name = typeof cond.tag === "string" ? cond.tag : cond.tag.name;
    const value = typeof cond.tag === "string" ? "" : (cond.tag.value || "");
    const update = (n, v) => { cond.tag = v ? { name: n, value: v } : n; };
    return [select(cat.tags.map((t) => [t, t]), name, (n) => update(n, value), { "data-testid": "tag-name" }),
      h("input", { placeholder: "值 value (optional)", value, "data-testid": "tag-value",
        oninput: (e) => { update(typeof cond.tag === "string" ? cond.tag : cond.tag.name, e.target.value); changed(); } })];
  }
  if (k === "attribute") {
    const spec = cond.attribute;
    const kinds = Object.fromEntries(cat.attributes.map((a) => [a.name, a.kind]));
    const ops = { boolean: ["eq", "ne"], number: ["eq", "ne", "gt", "gte", "lt", "lte"], string: ["eq", "ne", "contains"],
                  date: ["eq", "gt", "gte", "lt", "lte"], array: ["contains"] };
    const kind = kinds[spec.name] || "string";
    const op = Object.keys(spec).find((x) => x !== "name") || ops[kind][0];
    const value = spec[op];
    const setValue = (raw) => {
      for (const key of Object.keys(spec)) if (key !== "name") delete spec[key];
      spec[op] = kind === "boolean" ? raw === "true" || raw === true : kind === "number" ? Number(raw) : raw;
    };
    const valueInput = kind === "boolean"
      ? select([["true", "是 true"], ["false", "否 false"]], String(value), setValue, { "data-testid": "attr-value" })
      : h("input", { value: value ?? "", type: kind === "number" ? "number" : kind === "date" ? "date" : "text",
          "data-testid": "attr-value", oninput: (e) => { setValue(e.target.value); changed(); } });
    return [select(cat.attributes.filter((a) => a.name !== "one_id").map((a) => [a.name, a.name]), spec.name, (n) => {
      const nk = kinds[n]; cond.attribute = { name: n, [ops[nk][0]]: nk === "boolean" ? true : nk === "number" ? 0 : "" };
      renderBuilder(); }, { "data-testid": "attr-name" }),
      select(ops[kind].map((o) => [o, o]), op, (o) => { const v = spec[op]; delete spec[op]; spec[o] = v; }, { "data-testid": "attr-op" }),
      valueInput];
  }
  if (k === "lifecycle") return [checks(cat.lifecycle_stages, cond.lifecycle = [].concat(cond.lifecycle), (v) => { cond.lifecycle = v; }, "lifecycle-checks")];
  if (k === "rfm") return [checks(cat.rfm_segments, cond.rfm = [].concat(cond.rfm), (v) => { cond.rfm = v; }, "rfm-checks")];
  if (k === "model") {
    const spec = cond.model;
    const models = [...new Set(cat.models.map((m) => m.model).concat([spec.name]))];
    const grades = [...new Set(cat.models.filter((m) => m.model === spec.name).map((m) => m.grade).concat(["high", "medium", "low"]))];
    return [select(models.map((m) => [m, m]), spec.name, (v) => { spec.name = v; renderBuilder(); }, { "data-testid": "model-name" }),
      select(grades.map((g) => [g, g]), spec.grade, (v) => { spec.grade = v; }, { "data-testid": "model-grade" })];
  }
  if (k === "membership") {
    const spec = cond.membership;
    const tri = (key, label) => [h("span", {}, label), select([["", "任意 any"], ["true", "是 yes"], ["false", "否 no"]],
      spec[key] === undefined ? "" : String(spec[key]), (v) => { if (v === "") delete spec[key]; else spec[key] = v === "true"; })];
    return [...tri("is_paid_member", "付费 paid"), ...tri("marketing_consent", "营销同意 consent"),
      select([["", "任意品牌 any brand"], ...cat.brands.map((b) => [b, b])], spec.brand_id || "",
        (v) => { if (v) spec.brand_id = v; else delete spec.brand_id; })];
  }
  return [h("code", {}, JSON.stringify(cond[k]))];
}

// Drop empty groups so the engine never sees `all: []`; an empty root means "no definition yet".
function cleaned(cond) {
  const k = keyOf(cond);
  if (k === "all" || k === "any") {
    const items = cond[k].map(cleaned).filter(Boolean);
    return items.length ? { [k]: items } : null;
  }
  if (k === "not") { const inner = cleaned(cond.not); return inner ? { not: inner } : null; }
  return cond;
}
function currentDefinition() {
  const where = cleaned(state.where);
  if (!where) return null;
  const label = $("seg-label").value.trim();
  return label ? { label, where } : { where };
}

// a tiny YAML writer for the definition preview (mappings, lists, scalars)
function toYaml(value, indent = "") {
  const scalar = (v) => (typeof v === "string" && (/^[\w\u4e00-\u9fff][\w\u4e00-\u9fff .-]*$/.test(v) && !/^(true|false|null|\d)/.test(v))
    ? v : JSON.stringify(v));
  if (Array.isArray(value)) {
    if (value.every((v) => typeof v !== "object")) return "[" + value.map(scalar).join(", ") + "]";
    return value.map((v) => "\n" + indent + "- " + toYaml(v, indent + "  ").replace(/^\n\s*/, "")).join("");
  }
  if (value && typeof value === "object") {
    return Object.entries(value).map(([k, v]) => {
      const inner = toYaml(v, indent + "  ");
      return "\n" + indent + k + ":" + (inner.startsWith("\n") ? inner : " " + inner);
    }).join("");
  }
  return scalar(value);
}

let previewTimer = null;
function changed() {
  const def = currentDefinition();
  const name = $("seg-name").value.trim();
  $("definition-yaml").textContent = def ? toYaml({ name: name || "unsaved", ...def }).trim() : "# add a condition";
  $("preview-count").classList.add("stale");   // until the answer for this very definition arrives
  clearTimeout(previewTimer);
  previewTimer = setTimeout(runPreview, 350);
}
$("seg-label").addEventListener("input", changed);
$("seg-name").addEventListener("input", changed);

async function runPreview() {
  const def = currentDefinition();
  const seq = ++state.previewSeq;
  if (!def) { renderPreview(null); return; }
  try {
    const res = await api("POST", "segments/preview", { definition: def });
    if (seq !== state.previewSeq) return;   // a newer edit is on its way
    showError(""); renderPreview(res);
  } catch (e) {
    if (seq !== state.previewSeq) return;
    renderPreview(null); showError("定义有误 Definition problem:\n" + e.message);
  }
}

function bars(entries, testid) {
  const max = Math.max(1, ...entries.map(([, n]) => n));
  if (!entries.length) return h("p", { class: "note" }, "–");
  return h("div", { "data-testid": testid }, ...entries.map(([name, n]) => h("div", { class: "bar", "data-key": name },
    h("span", { class: "name", title: name }, name), h("span", { class: "fill", style: `width:${Math.round(140 * n / max) + 2}px` }),
    h("span", { class: "n" }, fmt(n)))));
}

function renderPreview(res) {
  state.lastPreview = res;
  $("preview-count").classList.remove("stale");
  $("preview-count").textContent = res ? fmt(res.count) : "–";
  $("preview-count").dataset.count = res ? String(res.count) : "";
  $("preview-meta").textContent = res ? `截至 as of ${res.as_of_date} · ${res.seconds}s · ${res.definition}` : "";
  fill("by-stage", bars(res ? Object.entries(res.by_stage) : [], "stage-bars"));
  fill("by-channel", bars(res ? Object.entries(res.by_channel) : [], "channel-bars"));
  fill("by-store", bars(res ? res.by_store.map((s) => [s.store_id, s.count]) : [], "store-bars"));
  const samples = res ? res.samples : [];
  fill("samples", samples.length ? h("table", {}, h("tr", {}, ...["One-ID", "姓名", "阶段", "RFM", "订单"].map((t) => h("th", {}, t))),
    ...samples.map((s) => h("tr", {}, h("td", {}, h("a", { href: "#/profile", onclick: () => openProfile(s.one_id) }, s.one_id)),
      h("td", {}, s.name_masked), h("td", {}, s.lifecycle_stage), h("td", {}, s.rfm_segment), h("td", {}, fmt(s.order_count)))))
    : h("p", { class: "note" }, "–"));
}

function segmentName() {
  const name = $("seg-name").value.trim();
  if (!/^[a-z][a-z0-9_]{0,62}$/.test(name)) {
    showError("名称 Name: lower-case letters, digits and _ , starting with a letter (e.g. kyoho_trial)");
    return null;
  }
  return name;
}

$("save-segment").addEventListener("click", async () => {
  const name = segmentName(); const def = currentDefinition();
  if (!name) return;
  if (!def) return showError("先添加条件 Add a condition first");
  try {
    let res;
    try { res = await api("PUT", "segments/" + name, { definition: def }); }
    catch (e) {
      if (e.status !== 409 || !confirm(`"${name}" exists. Replace it?`)) throw e;
      res = await api("PUT", "segments/" + name, { definition: def, overwrite: true });
    }
    showError(""); $("action-result").textContent = `已保存 Saved conf/segments/${res.file}`;
    await loadSavedList(name);
  } catch (e) { showError(e.message); }
});

$("run-segment").addEventListener("click", async () => {
  const name = segmentName(); if (!name) return;
  $("action-result").textContent = "运行中 Running…";
  try {
    const res = await api("POST", `segments/${name}/run`, {});
    showError(""); $("action-result").textContent = `已运行 Ran ${res.segment} for ${res.run_date}: ${fmt(res.members)} members`;
  } catch (e) { $("action-result").textContent = ""; showError(e.message); }
});

$("export-segment").addEventListener("click", async () => {
  const name = segmentName(); if (!name) return;
  const target = $("export-target").value;
  $("action-result").textContent = "导出中 Exporting…";
  try {
    const res = await api("POST", `segments/${name}/export`, { target }, true);
    const blob = await res.blob();
    const file = (res.headers.get("Content-Disposition") || "").replace(/.*filename="([^"]+)".*/, "$1") || `${name}.csv`;
    const link = h("a", { href: URL.createObjectURL(blob), download: file, "data-testid": "export-link" }, file);
    showError("");
    fill("action-result", `已导出 Exported ${res.headers.get("X-Exported-Rows")} rows (run ${res.headers.get("X-Run-Date")}; `
      + `${res.headers.get("X-Members")} members, ${res.headers.get("X-Excluded-No-Consent")} excluded without consent, `
      + `${res.headers.get("X-Consented-Without-Identifier")} without this identifier): `, link);
    link.click();
  } catch (e) { $("action-result").textContent = ""; showError(e.message); }
});

// ---------------------------------------------------------------------------------------------------- profile 360
$("profile-search").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const kind = $("search-kind").value; const value = $("search-value").value.trim();
  try {
    const res = await api("POST", "profiles/search", { [kind]: value });
    showError("");
    if (!res.one_ids.length) { fill("search-hits", "未找到 not found"); fill("profile"); return; }
    fill("search-hits", ...res.one_ids.map((id) => h("a", { href: "#/profile", class: "chip", onclick: () => openProfile(id) }, id)));
    await openProfile(res.one_ids[0]);
  } catch (e) { showError(e.message); }
});

async function openProfile(oneId) {
  if (location.hash !== "#/profile") { location.hash = "#/profile"; }
  show("profile");
  try {
    const p = await api("GET", "profiles/" + encodeURIComponent(oneId));
    showError(""); renderProfile(p);
  } catch (e) { showError(e.message); }
}

function kv(pairs) {
  return h("dl", { class: "kv" }, ...pairs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v === null || v === undefined || v === "" ? "–" : v)]));
}
function table(headers, rows, testid) {
  if (!rows.length) return h("p", { class: "note" }, "–");
  return h("table", { "data-testid": testid }, h("tr", {}, ...headers.map((x) => h("th", {}, x))),
    ...rows.map((r) => h("tr", {}, ...r.map((c) => h("td", {}, c === null || c === undefined ? "–" : c)))));
}

function renderProfile(p) {
  const pr = p.profile;
  const head = h("div", { class: "card" }, h("h2", { "data-testid": "profile-one-id" }, `${pr.name_masked || "—"} · ${pr.one_id}`),
    h("div", { class: "profile-head" },
      kv([["性别 gender", pr.gender], ["城市 city", pr.city], ["会员 member", pr.is_member ? "yes" : "no"],
          ["付费会员 paid", pr.is_paid_member ? "yes" : "no"], ["营销同意 consent", pr.has_marketing_consent ? "yes" : "no"],
          ["App", pr.has_app ? "yes" : "no"], ["常去门店 home store", pr.home_store_id]]),
      kv([["订单 orders", fmt(pr.order_count)], ["消费 spend", pr.total_amount === null ? "–" : "¥" + fmt(pr.total_amount)],
          ["首购 first", pr.first_purchase_date], ["末购 last", pr.last_purchase_date],
          ["渠道 channels", h("span", { class: "chips" }, ...(pr.channels || []).map((c) => h("span", { class: "chip " + c }, c)))],
          ["生命周期 stage", p.lifecycle.current ? `${p.lifecycle.current.stage} (since ${p.lifecycle.current.stage_since})` : "–"],
          ["RFM", p.rfm ? `${p.rfm.rfm_segment} · R${p.rfm.r_score} F${p.rfm.f_score} M${p.rfm.m_score}` : "–"]]),
      kv((p.scores || []).map((s) => [`模型 ${s.model}`, `${s.grade} (${Number(s.score).toFixed(2)}, ${s.scored_date})`]))));
  const memberships = table(["品牌 brand", "会员卡 card", "等级 level", "付费 paid", "同意 consent"],
    (pr.memberships || []).map((m) => [m.brand_id, m.member_card_no, m.level, m.is_paid_member ? "yes" : "no", m.marketing_consent ? "yes" : "no"]), "memberships");
  const identities = table(["类型 kind", "值 value (masked)", "来源 sources"],
    p.identities.map((i) => [i.kind, i.value, i.sources.join(", ")]), "identities");
  const timeline = p.orders.length ? h("div", { class: "timeline", "data-testid": "orders" }, ...p.orders.map((o) => h("div", { class: "event " + o.channel, "data-testid": "order" },
    h("strong", {}, `${o.paid_date} · ${o.channel}${o.platform ? "/" + o.platform : ""}${o.store_id ? " · " + o.store_id : ""} · ¥${fmt(o.amount)}`),
    h("div", { class: "note" }, o.lines.map((l) => `${l.sku_name || l.sku_id} ×${Number(l.quantity)}${l.is_return ? " (退 return)" : ""}`).join("，")))))
    : h("p", { class: "note", "data-testid": "orders" }, "无订单 no orders");
  const tags = h("div", { class: "chips", "data-testid": "tags" }, ...p.tags.map((t) => h("span", { class: "chip" }, t.value && t.value !== "true" ? `${t.tag}: ${t.value}` : t.tag)));
  const lifecycle = table(["日期 date", "从 from", "到 to"], p.lifecycle.transitions.map((t) => [t.changed_date, t.from_stage, t.to_stage]), "lifecycle-history");
  const wecom = table(["导购 guide", "门店 store", "external_userid", "添加 added", "有效 active"],
    p.wecom.map((w) => [w.guide_userid, w.store_id, w.external_userid, w.added_at, w.is_active ? "yes" : "no"]), "wecom");
  fill("profile", head,
    h("div", { class: "grid2" },
      h("div", { class: "card" }, h("h3", {}, "身份 Identities (masked)"), identities, h("h3", {}, "会员 Memberships"), memberships),
      h("div", { class: "card" }, h("h3", {}, "身份解释 Identity explanation — which records were joined and why"), identityGraph(p.identity_graph)),
      h("div", { class: "card" }, h("h3", {}, "订单时间线 Orders across channels"), timeline),
      h("div", { class: "card" }, h("h3", {}, "标签 Tags"), tags, h("h3", {}, "生命周期历史 Lifecycle history"), lifecycle,
        h("h3", {}, "企业微信导购 WeCom guide"), wecom)));
}

const ID_COLOURS = { record: "#1d2330", mobile: "#c2410c", member_card: "#2563eb", unionid: "#16a34a", openid: "#0d9488",
                     external_userid: "#9333ea", buyer_id: "#a16207" };

// The identity explanation as inline SVG. From the identity tables: identifiers on a circle, one line per link
// (grey = kept, red dashed = dropped, hover for rule / source / records). From silver provenance: records on
// the left, identifiers on the right, a line for each "record carries identifier".
function identityGraph(g) {
  if (!g.nodes.length) return h("p", { class: "note" }, "无身份记录 no identity records");
  const pos = {};
  let width = 560, height;
  if (g.source === "identity") {
    height = Math.min(460, 120 + g.nodes.length * 22);
    const cx = width / 2, cy = height / 2, rx = cx - 190, ry = cy - 30;  // room for labels on both sides
    g.nodes.forEach((n, i) => { const a = 2 * Math.PI * i / g.nodes.length - Math.PI / 2;
      pos[n.id] = [cx + rx * Math.cos(a), cy + ry * Math.sin(a)]; });
  } else {
    const records = g.nodes.filter((n) => n.kind === "record"), ids = g.nodes.filter((n) => n.kind !== "record");
    const rowH = 30; height = Math.max(records.length, ids.length) * rowH + 20;
    records.forEach((n, i) => { pos[n.id] = [140, 20 + i * rowH + (height - 20 - records.length * rowH) / 2]; });
    ids.forEach((n, i) => { pos[n.id] = [330, 20 + i * rowH + (height - 20 - ids.length * rowH) / 2]; });
  }
  const el = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, "data-testid": "identity-graph", role: "img" });
  for (const e of g.edges) {
    const [x1, y1] = pos[e.source], [x2, y2] = pos[e.target];
    el.append(svg("line", { x1, y1, x2, y2, stroke: e.kept ? "#9aa3b5" : "#ef4444", "stroke-width": 1.5,
      "stroke-dasharray": e.kept ? "" : "5 3", "data-kept": e.kept }, svg("title", {}, e.rule)));
  }
  for (const n of g.nodes) {
    const [x, y] = pos[n.id];
    const left = g.source === "identity" ? x < width / 2 - 1 : n.kind === "record";
    el.append(svg("g", { "data-kind": n.kind },
      svg("circle", { cx: x, cy: y, r: 6, fill: n.member === false ? "#d1d5db" : (ID_COLOURS[n.kind] || "#6b7385") }),
      svg("text", { x: left ? x - 10 : x + 10, y: y + 4, "font-size": 11.5, "text-anchor": left ? "end" : "start" },
        n.label.length > 30 ? n.label.slice(0, 14) + "…" + n.label.slice(-14) : n.label, svg("title", {}, n.label))));
  }
  const legend = g.source === "identity" ? "线 = 连接规则 (悬停查看) · links by rule (hover); red dashed = dropped by a guardrail; grey dot = another profile"
                                         : "左: 来源记录 source records · 右: 其携带的标识 identifiers they carry";
  return h("div", {}, el, h("p", { class: "note" }, legend), g.truncated ? h("p", { class: "note" }, "(truncated)") : null);
}

// ------------------------------------------------------------------------------------------------------ overview
async function loadOverview() {
  const parts = await Promise.allSettled([api("GET", "overview/rfm"), api("GET", "overview/lifecycle"),
                                          api("GET", "overview/segments"), api("GET", "overview/quality")]);
  const failed = parts.find((p) => p.status === "rejected");
  showError(failed ? failed.reason.message : "");
  const [rfm, life, segs, quality] = parts.map((p) => (p.status === "fulfilled" ? p.value : null));
  if (rfm) fill("rfm-grid", rfmGrid(rfm));
  if (life) { fill("funnel", funnel(life)); fill("funnel-history", stageHistory(life)); }
  if (segs) fill("segment-sizes", segmentSizes(segs));
  if (quality) fill("quality", qualityTable(quality));
}

function heat(n, max) { const a = max ? 0.08 + 0.85 * n / max : 0; return `rgba(194,65,12,${a.toFixed(2)})`; }
function rfmGrid(rfm) {
  if (!rfm.cells.length) return h("p", { class: "note" }, "无 RFM 数据 no RFM yet");
  const cell = {}; let max = 0;
  for (const c of rfm.cells) { const key = `${c.r_score}-${c.fm_score}`; const prev = cell[key] || { n: 0, names: [] };
    prev.n += c.customers; prev.names.push(c.rfm_segment); cell[key] = prev; max = Math.max(max, prev.n); }
  const rows = [5, 4, 3, 2, 1].map((fm) => h("tr", {}, h("th", {}, "FM " + fm), ...[1, 2, 3, 4, 5].map((r) => {
    const c = cell[`${r}-${fm}`];
    return h("td", { style: `background:${c ? heat(c.n, max) : "#f3f4f6"};color:${c && c.n > max * 0.6 ? "#fff" : "inherit"}`,
      title: c ? c.names.join(", ") : "" }, c ? [fmt(c.n), h("br", {}), [...new Set(c.names)].join("/")] : "");
  })));
  return h("div", {}, h("table", { class: "heat", "data-testid": "rfm-table" }, ...rows,
    h("tr", {}, h("th", {}, ""), ...[1, 2, 3, 4, 5].map((r) => h("th", {}, "R " + r)))),
    h("p", { class: "note" }, `as of ${rfm.as_of_date}: recency score across, frequency+monetary score up`));
}

const STAGE_ORDER = ["prospect", "member_no_purchase", "new", "active", "loyal", "reactivated", "dormant", "churned"];
function funnel(life) {
  const by = Object.fromEntries(life.stages.map((s) => [s.stage, s.customers]));
  return h("div", {}, bars(STAGE_ORDER.filter((s) => by[s] !== undefined).map((s) => [s, by[s]]), "funnel-bars"),
    h("p", { class: "note" }, `as of ${life.as_of_date || "–"}`));
}
function stageHistory(life) {
  const dates = [...new Set(life.history.map((x) => x.as_of_date))].sort();
  if (dates.length < 2) return h("p", { class: "note" }, dates.length ? "只有一天 only one day so far" : "–");
  const width = 520, height = 200, pad = 30;
  const max = Math.max(1, ...life.history.map((x) => x.customers));
  const x = (d) => pad + (width - 2 * pad) * dates.indexOf(d) / (dates.length - 1);
  const y = (n) => height - pad - (height - 2 * pad) * n / max;
  const palette = ["#64748b", "#a3a3a3", "#2563eb", "#16a34a", "#15803d", "#0d9488", "#f59e0b", "#b91c1c"];
  const el = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, "data-testid": "stage-history" });
  el.append(svg("line", { x1: pad, y1: height - pad, x2: width - pad, y2: height - pad, stroke: "#ccc" }));
  el.append(svg("text", { x: pad, y: height - 8, "font-size": 10 }, dates[0]), svg("text", { x: width - pad, y: height - 8, "font-size": 10, "text-anchor": "end" }, dates[dates.length - 1]));
  STAGE_ORDER.forEach((stage, i) => {
    const pts = dates.map((d) => { const r = life.history.find((x) => x.as_of_date === d && x.stage === stage); return [x(d), y(r ? r.customers : 0)]; });
    if (!life.history.some((r) => r.stage === stage)) return;
    el.append(svg("polyline", { points: pts.map((p) => p.join(",")).join(" "), fill: "none", stroke: palette[i], "stroke-width": 2 }, svg("title", {}, stage)));
  });
  const legend = h("div", { class: "chips" }, ...STAGE_ORDER.map((stage, i) => life.history.some((r) => r.stage === stage)
    ? h("span", { class: "chip", style: `background:none;border:1px solid ${palette[i]};color:${palette[i]}` }, stage) : null));
  return h("div", {}, el, legend);
}
function segmentSizes(segs) {
  if (!segs.segments.length) return h("p", { class: "note" }, "还没有运行过人群 no segment has run yet");
  const names = segs.segments.map((s) => s.segment);
  const size = Object.fromEntries(segs.segments.map((s) => [s.segment, s.members]));
  const overlap = {};
  for (const o of segs.overlaps) { overlap[o.segment_a + "|" + o.segment_b] = o.members; overlap[o.segment_b + "|" + o.segment_a] = o.members; }
  const max = Math.max(1, ...Object.values(overlap));
  const matrix = h("table", { class: "heat", "data-testid": "overlap-table" },
    h("tr", {}, h("th", {}, ""), ...names.map((n) => h("th", { title: n }, n.slice(0, 10)))),
    ...names.map((a) => h("tr", {}, h("th", { title: a }, a.slice(0, 14)), ...names.map((b) => {
      const n = a === b ? size[a] : (overlap[a + "|" + b] || 0);
      return h("td", { style: a === b ? "background:#e5e7eb" : `background:${heat(n, max)}` }, fmt(n));
    }))));
  return h("div", {}, bars(segs.segments.map((s) => [s.segment, s.members]), "segment-bars"),
    h("h3", {}, "重叠 Overlaps (members in both)"), matrix);
}
function qualityTable(q) {
  return h("div", {}, ingestTable(q),
    h("h3", {}, "身份解析 Identity runs (One-IDs, merges, splits, guardrails)"), identityRunsTable(q.identity_runs || []));
}
function identityRunsTable(runs) {
  if (!runs.length) return h("p", { class: "note" }, "还没有身份解析记录 no identity run yet");
  return table(["运行日 run date", "方式 mode", "触达记录 touched", "One-IDs", "新建 created", "合并 merged",
    "拆分 split", "共享标识 shared ids", "最大档案 largest profile", "秒 s"],
    runs.map((r) => [r.run_date, r.mode, r.records_touched === null ? "all" : fmt(r.records_touched), fmt(r.one_ids),
      fmt(r.creates), fmt(r.merges), fmt(r.splits), fmt(r.nodes_shared), fmt(r.largest_profile_nodes), r.duration_s]),
    "identity-runs-table");
}
function ingestTable(q) {
  if (!q.runs.length) return h("p", { class: "note" }, "还没有导入记录 no ingest run yet");
  return table(["运行日 run date", "来源 source", "接收 accepted", "隔离 quarantined", "", "平衡 balanced"],
    q.runs.map((r) => {
      const total = Math.max(1, r.rows_accepted + r.rows_quarantined);
      const barEl = h("span", { style: "display:inline-flex;width:120px;height:10px" },
        h("span", { style: `width:${100 * r.rows_accepted / total}%;background:#16a34a` }),
        h("span", { style: `width:${100 * r.rows_quarantined / total}%;background:#b91c1c` }));
      return [r.run_date, r.source, fmt(r.rows_accepted), fmt(r.rows_quarantined), barEl, r.is_balanced ? "✓" : "✗"];
    }), "quality-table");
}

route();
