// Features: the pack's SAE features (label, top activating examples with the activating
// token highlighted, decoder-cosine neighbours, logit effects) and the probes' report.
"use strict";
SG.tabs.features = (function () {
  const state = { offset: 0, limit: 50, total: 0, reportLoaded: false };

  async function search() {
    const q = SG.$("feat-query").value;
    const r = await SG.api("/ui/api/features?q=" + encodeURIComponent(q) + "&offset=" + state.offset + "&limit=" + state.limit);
    state.total = r.total;
    SG.setText("feat-total", r.total + " of " + r.d_sae + " features" + (r.total ? ", " + (r.offset + 1) + "-" + (r.offset + r.items.length) : ""));
    const t = SG.$("feat-list");
    SG.clear(t);
    t.appendChild(SG.el("tr", {}, SG.el("th", {}, "id"), SG.el("th", {}, "label"), SG.el("th", {}, "density")));
    for (const f of r.items) {
      t.appendChild(SG.el("tr", { dataset: { fid: String(f.id) }, onclick: () => open(f.id) }, SG.el("td", {}, "#" + f.id),
        SG.el("td", {}, f.label), SG.el("td", {}, f.density === null ? "" : f.density.toExponential(2))));
    }
  }

  function tokenList(title, items) {
    return [SG.el("h5", {}, title), SG.el("ol", { class: "logits" }, items.map(([tok, v]) =>
      SG.el("li", {}, SG.el("code", {}, JSON.stringify(tok)), " " + SG.fmt(v, 2))))];
  }

  async function open(fid) {
    const box = SG.$("feat-detail");
    box.hidden = false;
    SG.clear(box);
    box.appendChild(SG.el("p", { class: "muted" }, "loading feature #" + fid + " ..."));
    let f;
    try {
      f = await SG.api("/ui/api/features/" + encodeURIComponent(fid));
    } catch (err) {
      SG.clear(box);
      box.appendChild(SG.el("p", { class: "error" }, err.message));
      return;
    }
    SG.clear(box);
    box.dataset.fid = String(f.id);
    box.appendChild(SG.el("h3", {}, "Feature #" + f.id + " ", SG.el("span", { class: "label" }, f.label || "(no label)")));
    box.appendChild(SG.el("p", { class: "muted" }, "density " + (f.density === null || f.density === undefined ? "?" : f.density.toExponential(2)) +
      (f.label_source ? ", label " + f.label_source : "")));
    box.appendChild(SG.el("h4", {}, "Top activating examples"));
    for (const ex of f.examples) {
      box.appendChild(SG.el("div", { class: "example" }, SG.fmt(ex.activation, 1) + "  ", ex.before,
        SG.el("mark", {}, ex.token), ex.after));
    }
    if (!f.examples.length) box.appendChild(SG.el("p", { class: "muted" }, "no examples recorded for this feature"));
    box.appendChild(SG.el("h4", {}, "Decoder-cosine neighbours"));
    box.appendChild(SG.el("ul", { class: "neighbours" }, f.neighbours.map((n) =>
      SG.el("li", {}, SG.featureLink(n.id, n.label), " cos " + SG.fmt(n.cosine, 3)))));
    box.appendChild(SG.el("h4", {}, "Logit effects (direction x ln_final.w @ W_U)"));
    box.appendChild(SG.el("div", { class: "row" }, SG.el("div", {}, tokenList("raises", f.logits.up)),
      SG.el("div", {}, tokenList("lowers", f.logits.down))));
  }

  // REPORT.md: headings, tables and paragraphs, all as text
  function renderMarkdown(md, box) {
    SG.clear(box);
    const lines = md.split("\n");
    let table = null;
    let para = [];
    const flush = () => { if (para.length) box.appendChild(SG.el("p", {}, para.join(" "))); para = []; };
    for (const line of lines) {
      if (line.startsWith("|")) {
        flush();
        const cells = line.split("|").slice(1, -1).map((c) => c.trim());
        if (cells.every((c) => /^:?-+:?$/.test(c))) continue;
        if (!table) { table = SG.el("table", { class: "grid report" }); box.appendChild(table); table._head = true; }
        table.appendChild(SG.el("tr", {}, cells.map((c) => SG.el(table._head ? "th" : "td", {}, c.replace(/\*\*/g, "")))));
        table._head = false;
        continue;
      }
      table = null;
      const h = /^(#{1,6})\s+(.*)$/.exec(line);
      if (h) { flush(); box.appendChild(SG.el("h" + Math.min(6, h[1].length + 2), {}, h[2])); }
      else if (!line.trim()) flush();
      else para.push(line);
    }
    flush();
  }

  async function loadReport() {
    if (state.reportLoaded) return;
    state.reportLoaded = true;
    const r = await SG.api("/ui/api/probes/report");
    renderMarkdown(r.report || "(this pack has no probes/REPORT.md)", SG.$("probe-report"));
    const imgs = SG.$("probe-images");
    SG.clear(imgs);
    for (const name of r.images) {
      const resp = await fetch("/ui/api/probes/files/" + encodeURIComponent(name), { headers: SG.headers() });
      if (!resp.ok) continue;
      const url = URL.createObjectURL(await resp.blob());
      imgs.appendChild(SG.el("figure", {}, SG.el("img", { src: url, alt: name }), SG.el("figcaption", {}, name)));
    }
  }

  function init() {
    SG.$("feat-search").addEventListener("submit", (e) => { e.preventDefault(); state.offset = 0; search(); });
    SG.$("feat-prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - state.limit); search(); });
    SG.$("feat-next").addEventListener("click", () => { if (state.offset + state.limit < state.total) { state.offset += state.limit; search(); } });
  }

  let shown = false;
  function onShow() {
    if (shown) return;
    shown = true;
    search().catch((e) => SG.setText("feat-total", e.message));
    loadReport().catch((e) => SG.setText("probe-report", e.message));
  }

  return { init: init, onShow: onShow, open: open };
})();
