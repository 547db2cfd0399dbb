"use strict";
// The interactive part of a tokenmeter HTML report: an icicle of the scope tree
// (by cost, tokens or calls) and the details of the node under the pointer.
// Every name from the data is set with textContent: nothing is parsed as HTML.
(function () {
  var raw = document.getElementById("tm-data").textContent;
  var data = JSON.parse(raw);
  var ROW = 28;
  var metric = data.total.cost_usd > 0 ? "cost" : "tokens";
  // The nodes come flat, parents first: link each to its parent's children.
  var parents = new Map();
  data.nodes.forEach(function (n) {
    n.children = [];
    if (n.parent >= 0) {
      var p = data.nodes[n.parent];
      p.children.push(n);
      parents.set(n, p);
    }
  });
  var root = data.nodes[0];
  var focus = root;
  var selected = null;

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function num(n) { return Number(n).toLocaleString("en-US"); }
  function money(c) { return "$" + Number(c).toFixed(6); }
  function value(u) {
    if (metric === "cost") return u.cost_usd;
    if (metric === "tokens") return u.total_tokens;
    return u.calls;
  }
  function label(n) { return n.path.length ? n.path.join("/") : "(total)"; }
  function shown(u) {
    if (metric === "cost") return money(u.cost_usd) + (u.unpriced_calls ? "*" : "");
    if (metric === "tokens") return num(u.total_tokens) + " tokens";
    return num(u.calls) + " calls";
  }

  function colour(name, depth) {
    var h = 0;
    for (var i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) % 360;
    return "hsl(" + ((h + depth * 37) % 360) + ", 62%, " + (78 - Math.min(depth, 6) * 3) + "%)";
  }

  function depthOf(n) {
    var d = 0;
    n.children.forEach(function (c) { d = Math.max(d, 1 + depthOf(c)); });
    return d;
  }

  function draw() {
    var box = document.getElementById("icicle");
    box.replaceChildren();
    var levels = depthOf(focus) + 1;
    box.style.height = levels * ROW + 4 + "px";
    var total = value(focus.usage);
    function place(n, x, w, depth) {
      // Slivers under 0.05% of the width would not show: leave them (and their subtree) out.
      if (w < 0.05) return;
      var c = el("div", n === root ? "(total)" : n.name, "cell");
      c.style.left = x + "%";
      c.style.width = w + "%";
      c.style.top = depth * ROW + 2 + "px";
      c.style.background = colour(n.name, depth);
      c.title = label(n) + ": " + shown(n.usage);
      c.dataset.path = label(n);
      if (n === selected) c.classList.add("sel");
      c.addEventListener("mouseenter", function () { details(n); });
      c.addEventListener("click", function () { selected = n; focus = n.children.length ? n : focus; draw(); details(n); });
      box.appendChild(c);
      var v = value(n.usage);
      var cx = x;
      n.children.forEach(function (k) {
        var kw = v > 0 ? (w * value(k.usage)) / v : 0;
        place(k, cx, kw, depth + 1);
        cx += kw;
      });
    }
    place(focus, 0, total > 0 ? 100 : 0, 0);
    if (total <= 0) box.appendChild(el("p", "Nothing to show by " + metric + ".", "note"));
    crumbs();
  }

  function crumbs() {
    var bar = document.getElementById("crumbs");
    bar.replaceChildren();
    var chain = [];
    for (var n = focus; n; n = parents.get(n)) chain.unshift(n);
    chain.forEach(function (n) {
      var b = el("button", n === root ? "(total)" : n.name);
      b.addEventListener("click", function () { focus = n; draw(); details(n); });
      bar.appendChild(b);
    });
  }

  function models(n, out) {
    n.breakdown.forEach(function (b) {
      var m = out.get(b.model) || { calls: 0, total_tokens: 0, cost_usd: 0, unpriced_calls: 0 };
      m.calls += b.usage.calls;
      m.total_tokens += b.usage.total_tokens;
      m.cost_usd += b.usage.cost_usd;
      m.unpriced_calls += b.usage.unpriced_calls;
      out.set(b.model, m);
    });
    n.children.forEach(function (c) { models(c, out); });
    return out;
  }

  function row(t, cells, head) {
    var tr = el("tr");
    cells.forEach(function (c) { tr.appendChild(el(head ? "th" : "td", c)); });
    t.appendChild(tr);
  }

  function details(n) {
    var d = document.getElementById("details");
    d.replaceChildren();
    d.appendChild(el("h3", label(n)));
    d.appendChild(el("div", "entered " + num(n.entries) + " time" + (n.entries === 1 ? "" : "s"), "note"));
    var t = el("table");
    row(t, ["", "inclusive", "own"], true);
    var u = n.usage, s = n.self_usage;
    row(t, ["calls", num(u.calls), num(s.calls)]);
    row(t, ["input tokens", num(u.input_tokens), num(s.input_tokens)]);
    row(t, ["cached", num(u.cache_read_tokens), num(s.cache_read_tokens)]);
    row(t, ["output tokens", num(u.output_tokens), num(s.output_tokens)]);
    row(t, ["reasoning", num(u.reasoning_tokens), num(s.reasoning_tokens)]);
    row(t, ["cost", money(u.cost_usd), money(s.cost_usd)]);
    d.appendChild(t);
    if (u.unpriced_calls) d.appendChild(el("p", num(u.unpriced_calls) + " unpriced calls: the cost is a lower bound, not their cost at $0", "warn"));
    if (u.estimated_calls) d.appendChild(el("p", num(u.estimated_calls) + " calls with estimated tokens", "warn"));
    if (u.failed_calls) d.appendChild(el("p", num(u.failed_calls) + " failed calls", "warn"));
    var ms = models(n, new Map());
    if (ms.size) {
      d.appendChild(el("h3", "models (inclusive)"));
      var mt = el("table");
      row(mt, ["model", "calls", "tokens", "cost"], true);
      ms.forEach(function (m, name) {
        row(mt, [name, num(m.calls), num(m.total_tokens), money(m.cost_usd) + (m.unpriced_calls ? "*" : "")]);
      });
      d.appendChild(mt);
    }
  }

  document.querySelectorAll("input[name=metric]").forEach(function (r) {
    r.checked = r.value === metric;
    r.addEventListener("change", function () { metric = r.value; draw(); });
  });
  draw();
  details(root);
})();
