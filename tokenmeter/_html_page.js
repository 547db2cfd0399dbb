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
  // A node's path, from its parents (the data carries no path per node: a chain
  // of scopes N deep would take N * N names).
  function label(n) {
    var parts = [];
    for (var m = n; m !== root; m = parents.get(m)) parts.push(m.name);
    parts = data.root_path.concat(parts.reverse());
    return parts.length ? parts.join("/") : "(total)";
  }
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

  // Walks below are loops, not recursion: a tree of any depth is drawn.
  function depthOf(n) {
    var d = 0, stack = [[n, 0]];
    while (stack.length) {
      var top = stack.pop();
      d = Math.max(d, top[1]);
      top[0].children.forEach(function (c) { stack.push([c, top[1] + 1]); });
    }
    return d;
  }

  function draw() {
    var box = document.getElementById("icicle");
    box.replaceChildren();
    var levels = depthOf(focus) + 1;
    box.style.height = levels * ROW + 4 + "px";
    var total = value(focus.usage);
    function place(n, x, w, depth) {
      var c = el("div", n === root ? "(total)" : n.name, "cell");
      c.style.left = x + "%";
      c.style.width = w + "%";
      c.style.top = depth * ROW + 2 + "px";
      c.style.background = colour(n.name, depth);
      if (n === selected) c.classList.add("sel");
      c.addEventListener("mouseenter", function () {
        c.title = label(n) + ": " + shown(n.usage);
        details(n);
      });
      c.addEventListener("click", function () { selected = n; focus = n.children.length ? n : focus; draw(); details(n); });
      box.appendChild(c);
    }
    // Depth first, in order; slivers under 0.05% of the width would not show:
    // they (and their subtrees) are left out.
    var todo = [[focus, 0, total > 0 ? 100 : 0, 0]];
    while (todo.length) {
      var t = todo.pop(), n = t[0], x = t[1], w = t[2], depth = t[3];
      if (w < 0.05) continue;
      place(n, x, w, depth);
      var v = value(n.usage), cx = x, kids = [];
      n.children.forEach(function (k) {
        var kw = v > 0 ? (w * value(k.usage)) / v : 0;
        kids.push([k, cx, kw, depth + 1]);
        cx += kw;
      });
      while (kids.length) todo.push(kids.pop());
    }
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

  function models(top, out) {
    var stack = [top];
    while (stack.length) {
      var n = stack.pop();
      n.breakdown.forEach(function (b) {
        var m = out.get(b.model) || { calls: 0, total_tokens: 0, cost_usd: 0, unpriced_calls: 0 };
        m.calls += b.usage.calls;
        m.total_tokens += b.usage.total_tokens;
        m.cost_usd += b.usage.cost_usd;
        m.unpriced_calls += b.usage.unpriced_calls;
        out.set(b.model, m);
      });
      for (var i = n.children.length - 1; i >= 0; i--) stack.push(n.children[i]);
    }
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
