/* The operators' dashboard (issue 13): reads /admin/graphql with the operator's token and draws the KPIs
   with ECharts. The token comes from the sign-in form or the URL fragment #token=… (kept in this tab's
   sessionStorage; the fragment is removed from the address bar). window.mallpointsDashboard exposes the
   charts and the last answer for tests and kiosk scripts. */
(function () {
  "use strict";
  var ENDPOINT = "/admin/graphql";
  var KEY = "mallpoints.dashboard.token";
  var QUERY = "query Dashboard($from: Date!, $to: Date!) {\n" +
    "  kpis(from: $from, to: $to) { membersTotal membersNew membersActive purchases memberSalesYuan\n" +
    "    averageTicket { amountFen } repurchaseRatePermille pointsIssued pointsRedeemed pointsExpired\n" +
    "    pointsOutstanding liability { amountFen } breakageRatePermille checkIns taskCompletions redemptions\n" +
    "    flashSaleOrders drawPlays parkingOffsets parkingOffset { amountFen }\n" +
    "    daily { day membersNew membersActive purchases memberSalesYuan pointsIssued pointsRedeemed pointsExpired } }\n" +
    "  lifecycleDistribution { stage members }\n" +
    "  topMerchants(from: $from, to: $to, first: 10) { code name purchases sales { amountFen } }\n" +
    "  campaigns(first: 6) { edges { node { name sent delivered opened grantPoints\n" +
    "    effect(days: 14) { liftPermille target { members purchasersPermille } holdout { members purchasersPermille } } } } }\n}";
  var LOGIN = "mutation Login($input: OperatorLoginInput!) { operatorLogin(input: $input) { token userErrors { message } } }";
  var state = { token: null, charts: {}, data: null, ready: false, error: null };
  window.mallpointsDashboard = state;

  function $(id) { return document.getElementById(id); }

  function shanghaiDay(offsetDays) {
    var t = new Date(Date.now() + 8 * 3600 * 1000 + offsetDays * 86400 * 1000);
    return t.toISOString().slice(0, 10);
  }

  function post(query, variables) {
    var headers = { "content-type": "application/json", "accept": "application/json" };
    if (state.token) { headers.authorization = "Bearer " + state.token; }
    return fetch(ENDPOINT, { method: "POST", headers: headers, credentials: "omit",
      body: JSON.stringify({ query: query, variables: variables }) }).then(function (r) { return r.json(); });
  }

  function yuan(fen) { return "¥" + (fen / 100).toLocaleString("zh-CN", { maximumFractionDigits: 2 }); }
  function permille(v) { return (v / 10).toFixed(1) + "%"; }
  function num(v) { return Number(v).toLocaleString("zh-CN"); }

  function cards(k) {
    var items = [
      ["会员总数 Members", num(k.membersTotal)], ["新增 New", num(k.membersNew)],
      ["活跃 Active", num(k.membersActive)], ["消费笔数 Purchases", num(k.purchases)],
      ["会员销售 Member sales", "¥" + num(k.memberSalesYuan)], ["客单价 Avg ticket", yuan(k.averageTicket.amountFen)],
      ["复购率 Repurchase", permille(k.repurchaseRatePermille)], ["积分发放 Issued", num(k.pointsIssued)],
      ["积分消耗 Redeemed", num(k.pointsRedeemed)], ["积分过期 Expired", num(k.pointsExpired)],
      ["未用积分 Outstanding", num(k.pointsOutstanding)], ["负债 Liability", yuan(k.liability.amountFen)],
      ["沉淀率 Breakage", permille(k.breakageRatePermille)], ["签到 Check-ins", num(k.checkIns)],
      ["兑换 Redemptions", num(k.redemptions)], ["抽奖 Draw plays", num(k.drawPlays)],
      ["停车抵扣 Parking offsets", num(k.parkingOffsets)], ["抵扣金额 Offset", yuan(k.parkingOffset.amountFen)]
    ];
    var box = $("cards");
    box.textContent = "";
    items.forEach(function (item) {
      var card = document.createElement("div");
      card.className = "card";
      var label = document.createElement("div"); label.className = "label"; label.textContent = item[0];
      var value = document.createElement("div"); value.className = "value"; value.textContent = item[1];
      card.appendChild(label); card.appendChild(value); box.appendChild(card);
    });
  }

  function chart(id, option) {
    var el = $(id);
    var c = state.charts[id] || echarts.init(el, null, { renderer: "canvas" });
    state.charts[id] = c;
    c.setOption(option, true);
  }

  function draw(d) {
    var k = d.kpis, days = k.daily.map(function (x) { return x.day.slice(5); });
    cards(k);
    chart("chart-daily", {
      tooltip: { trigger: "axis" }, legend: { top: 0 }, grid: { left: 50, right: 60, top: 50, bottom: 30 },
      xAxis: { type: "category", data: days },
      yAxis: [{ type: "value", name: "count" }, { type: "value", name: "¥" }],
      series: [
        { name: "Active", type: "line", data: k.daily.map(function (x) { return x.membersActive; }) },
        { name: "Purchases", type: "line", data: k.daily.map(function (x) { return x.purchases; }) },
        { name: "Member sales ¥", type: "bar", yAxisIndex: 1, data: k.daily.map(function (x) { return x.memberSalesYuan; }) }
      ]
    });
    chart("chart-points", {
      tooltip: { trigger: "axis" }, legend: { top: 0 }, grid: { left: 60, right: 20, top: 50, bottom: 30 },
      xAxis: { type: "category", data: days }, yAxis: { type: "value", name: "points" },
      series: [
        { name: "Issued", type: "bar", data: k.daily.map(function (x) { return x.pointsIssued; }) },
        { name: "Redeemed", type: "bar", stack: "out", data: k.daily.map(function (x) { return -x.pointsRedeemed; }) },
        { name: "Expired", type: "bar", stack: "out", data: k.daily.map(function (x) { return -x.pointsExpired; }) }
      ]
    });
    chart("chart-lifecycle", {
      tooltip: { trigger: "item" }, legend: { bottom: 0 },
      series: [{ name: "Members", type: "pie", radius: ["35%", "65%"],
        data: d.lifecycleDistribution.map(function (x) { return { name: x.stage, value: x.members }; }) }]
    });
    var top = d.topMerchants.slice().reverse();
    chart("chart-merchants", {
      tooltip: { trigger: "axis" }, grid: { left: 120, right: 30, top: 10, bottom: 30 },
      xAxis: { type: "value", name: "¥" },
      yAxis: { type: "category", data: top.map(function (x) { return x.name; }) },
      series: [{ name: "Member sales ¥", type: "bar",
        data: top.map(function (x) { return Math.round(x.sales.amountFen / 100); }) }]
    });
    // Campaigns, newest first: messages sent, delivered and opened, and purchasers per thousand members
    // of the target against the holdout in the 14 days from sending (the difference is the lift).
    var camps = d.campaigns.edges.map(function (e) { return e.node; }).reverse();
    function rate(c, group) { return c.effect ? c.effect[group].purchasersPermille : 0; }
    chart("chart-campaigns", {
      tooltip: { trigger: "axis" }, legend: { top: 0 }, grid: { left: 50, right: 60, top: 50, bottom: 30 },
      xAxis: { type: "category", data: camps.map(function (c) { return c.name; }) },
      yAxis: [{ type: "value", name: "messages" }, { type: "value", name: "‰ buying" }],
      series: [
        { name: "Sent", type: "bar", data: camps.map(function (c) { return c.sent; }) },
        { name: "Delivered", type: "bar", data: camps.map(function (c) { return c.delivered; }) },
        { name: "Opened", type: "bar", data: camps.map(function (c) { return c.opened; }) },
        { name: "Target ‰", type: "line", yAxisIndex: 1, data: camps.map(function (c) { return rate(c, "target"); }) },
        { name: "Holdout ‰", type: "line", yAxisIndex: 1, data: camps.map(function (c) { return rate(c, "holdout"); }) }
      ]
    });
  }

  function show(signedIn) {
    $("signin").hidden = signedIn;
    $("board").hidden = !signedIn;
    $("signout").hidden = !signedIn;
  }

  function load() {
    state.ready = false;
    $("status").textContent = "Loading…";
    return post(QUERY, { from: $("from").value, to: $("to").value }).then(function (answer) {
      if (answer.errors && answer.errors.length) {
        var code = (answer.errors[0].extensions || {}).code;
        if (code === "UNAUTHENTICATED") { signOut(); return; }
        state.error = answer.errors[0].message;
        $("status").textContent = state.error;
        return;
      }
      state.data = answer.data;
      state.error = null;
      $("status").textContent = "";
      draw(answer.data);
      state.ready = true;
    }).catch(function (err) { state.error = String(err); $("status").textContent = state.error; });
  }

  function signOut() {
    state.token = null;
    sessionStorage.removeItem(KEY);
    show(false);
  }

  function start() {
    $("from").value = shanghaiDay(-29);
    $("to").value = shanghaiDay(0);
    var match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (match) {
      state.token = decodeURIComponent(match[1]);
      sessionStorage.setItem(KEY, state.token);
      history.replaceState(null, "", location.pathname + location.search);
    } else {
      state.token = sessionStorage.getItem(KEY);
    }
    $("range").addEventListener("submit", function (e) { e.preventDefault(); load(); });
    $("signout").addEventListener("click", signOut);
    $("login").addEventListener("submit", function (e) {
      e.preventDefault();
      var input = { username: $("username").value, password: $("password").value };
      post(LOGIN, { input: input }).then(function (answer) {
        var res = answer.data && answer.data.operatorLogin;
        if (!res || !res.token) {
          $("login-error").textContent = (res && res.userErrors.length) ? res.userErrors[0].message : "sign-in failed";
          return;
        }
        state.token = res.token;
        sessionStorage.setItem(KEY, state.token);
        $("password").value = "";
        show(true);
        load();
      });
    });
    window.addEventListener("resize", function () {
      Object.keys(state.charts).forEach(function (id) { state.charts[id].resize(); });
    });
    if (state.token) { show(true); load(); } else { show(false); }
  }

  start();
}());
