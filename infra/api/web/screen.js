// Live without reloading: the cheap `/stats/` (a snapshot, never a scan per request) every second;
// the board, the map, the lists and the scores when its counts move, and at least every 15 s (the
// clock alone makes tasks overdue).
const POLL_MS = 1000, FULL_REFRESH_MS = 15000;
const I18N = {
  en: { title: "City Operations Centre", updated: "updated", incidents: "Incidents", dispatched: "Dispatched automatically",
        manual: "Waiting for an operator", open: "Open tasks", overdue: "Open and overdue", ontime: "On-time closure",
        map: "Grids: open and overdue tasks", chart: "On-time closure by department", board: "SLA board",
        unit: "Unit", tasks: "Tasks", response: "Response", handled: "Handled", closure: "Closure", satisfaction: "Satisfaction",
        overdueList: "Overdue tasks, longest first", item: "Item", street: "Street", deadline: "Due", late: "Late by",
        supervised: "Pressed", withPrewarned: "with pre-warned", clickTask: "Click a row for the task's timeline",
        scores: "Scores and ranking", byUnit: "departments", byStreet: "streets", rank: "Rank", name: "Name",
        score: "Score", terms: "Terms", gridTasks: "Open tasks in the grid", close: "Close", state: "State",
        timelineOf: "Timeline of task", queueLink: "Operator queue →", trends: "Trends",
        byHour: "hourly (48 h)", byDay: "daily (30 days)",
        accuracy: "Dispatch accuracy (returns and re-dispatches)", byItem: "items", firstDispatches: "First dispatches",
        returned: "Returned", wrongFunction: "Not our function", wrongArea: "Not our area", returnRate: "Return rate",
        rerouted: "Routed again", rerouteRate: "Re-dispatch rate",
        accuracyAbout: "How often units sent work back (not their function, not their area) and how often it was " +
                       "routed again: where automatic dispatch or the duty list sends work wrongly." },
};
// The dispatcher's model line: in force, trained when and on how many rulings, right unit in production.
const MODEL_LINE = {
  zh: m => `派单模型 ${m.version ?? "无（仅关键词）"}，训练于 ${when(m.trainedAt)}，学习了 ${m.rulings} 条裁定与退单；` +
           `生产中派对单位 ${pct(m.right)}（首次派单 ${m.dispatched}）；近 30 天自动派单占比 ${pct(m.autoShare)}`,
  en: m => `Dispatch model ${m.version ?? "none (keywords alone)"}, trained ${when(m.trainedAt)} on ${m.rulings} rulings ` +
           `and returns; right unit in production ${pct(m.right)} (${m.dispatched} first dispatches); ` +
           `sent automatically over 30 days ${pct(m.autoShare)}`,
};
let lang = "zh";
const view = { trendBy: "hour", boardBy: "unit", accuracyBy: "unit", scoresBy: "unit", scheme: null, prewarned: false, sort: { key: "late", desc: true } };
let latest = null;  // the last figures fetched, so a click or a language switch re-renders at once
const t = key => pageWord(lang, I18N.en, key);
function setLanguage(to) {
  lang = to;
  showLanguage(to, I18N.en);
  if (latest) renderAll();
}
document.getElementById("lang").onclick = () => setLanguage(lang === "zh" ? "en" : "zh");

const pct = r => (r === null || r === undefined) ? "—" : (100 * r).toFixed(1) + "%";
// The city's time, whatever the browser's zone (the api says which: /stats/ `timezone`).
let cityZone = "Asia/Shanghai";
const when = iso => iso ? new Date(iso).toLocaleString("zh-CN", { hour12: false, timeZone: cityZone }) : "—";
const map = echarts.init(document.getElementById("map"), null, { renderer: "canvas" });
const chart = echarts.init(document.getElementById("chart"));
const trend = echarts.init(document.getElementById("trend"));
const SERIES = { incidents: ["受理事件", "Reports"], dispatched: ["派单", "Dispatched"], closed: ["结案", "Closed"],
                 closed_on_time: ["按期结案", "Closed on time"] };
let gridsReady = false;

async function json(path) {
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

async function loadGrids() {
  echarts.registerMap("grids", await json("grids.geojson"));
  gridsReady = true;
}

// A table body from rows of [text, code on hover, class] cells.
function fill(selector, rows, onClick) {
  const body = document.querySelector(`${selector} tbody`);
  body.replaceChildren(...rows.map(({ cells, data, key }) => {
    const tr = document.createElement("tr");
    if (key) tr.dataset.key = key;
    if (onClick) { tr.className = "clickable"; tr.onclick = () => onClick(data); }
    cells.forEach(([text, code, cls]) => {
      const td = document.createElement("td");
      td.textContent = (text === "" || text === null || text === undefined) ? "—" : text;
      if (code) td.title = code;  // codes on hover, names everywhere
      if (cls) td.className = cls;
      tr.appendChild(td);
    });
    return tr;
  }));
}

function lateBy(row, now) {
  const hours = (now - new Date(row.finish_by)) / 3.6e6;
  if (hours < 0) return [lang === "en" ? "pre-warned" : "预警", "warn"];
  return [hours >= 48 ? `${Math.floor(hours / 24)} ${lang === "en" ? "days" : "天"}`
                      : `${Math.round(hours)} ${lang === "en" ? "h" : "小时"}`, "bad"];
}

function renderOverdue() {
  const { overdue, now } = latest;
  const { key, desc } = view.sort;
  const value = r => key === "late" ? -new Date(r.finish_by) : (r[key] ?? "");
  const rows = [...overdue].sort((a, b) => (value(a) < value(b) ? -1 : value(a) > value(b) ? 1 : 0) * (desc ? -1 : 1));
  fill("#overdue", rows.slice(0, 15).map(r => {
    const [late, cls] = lateBy(r, now);
    return { key: r.task_id, data: r, cells: [[r.unit_name, r.unit], [r.item_title, r.item_no], [r.street_name, r.street],
                                               [when(r.finish_by)], [late, "", cls], [r.supervised]] };
  }), showTimeline);
}

function renderScores() {
  const scores = latest.scores;
  const select = document.getElementById("scheme");
  if (!select.options.length) {
    Object.entries(scores.schemes).forEach(([key, s]) => select.add(new Option(s.title, key)));
    select.value = scores.scheme;
  }
  [...select.options].forEach(o => { o.text = scores.schemes[o.value][lang === "en" ? "title_en" : "title"]; });
  document.getElementById("scheme-about").textContent = lang === "en" ? scores.about_en : scores.about;
  fill("#scores", scores.rows.slice(0, 15).map(r => ({ key: r.key, cells: [
    [r.rank ?? "—"], [r.name, r.key], [r.score === null ? "—" : r.score.toFixed(1)],
    [r.terms.map(term => `${term.title} ${pct(term.rate)}×${Math.round(100 * term.weight)}%`).join("，")], [r.tasks]] })));
}

function renderBoard() {
  fill("#board", latest.board.rows.slice(0, 15).map(r => ({ key: r.key, cells: [
    [r.name, r.key], [r.tasks], [r.open], [r.overdue_open, "", r.overdue_open > 0 ? "bad" : ""], [pct(r.response_rate)],
    [pct(r.handled_rate)], [pct(r.closure_rate)], [pct(r.on_time_closure_rate)], [pct(r.satisfaction_rate)]] })));
}

function renderAccuracy() {
  fill("#accuracy", latest.accuracy.rows.slice(0, 15).map(r => ({ key: r.key, cells: [
    [r.name, r.key], [r.dispatched], [r.returned], [r.wrong_function, "", r.wrong_function > 0 ? "bad" : ""],
    [r.wrong_area], [pct(r.return_rate)], [r.rerouted], [pct(r.reroute_rate)]] })));
}

function renderModel() {
  const { in_force: inForce, models, by_day: byDay } = latest.model;
  const own = models.find(m => m.version === inForce.version) || {};
  const sent = byDay.reduce((n, d) => n + d.sent_automatically, 0), waited = byDay.reduce((n, d) => n + d.waited, 0);
  document.getElementById("model").textContent = MODEL_LINE[lang]({
    version: inForce.version, trainedAt: inForce.training.trained_at, rulings: inForce.training.rulings ?? 0,
    right: own.right_unit_rate, dispatched: own.dispatched ?? 0, autoShare: sent + waited ? sent / (sent + waited) : null });
}

function renderFigures() {
  const { stats, byUnit } = latest;
  const total = byUnit.total || {};
  document.getElementById("f-incidents").textContent = stats.clickhouse_incidents;
  document.getElementById("f-dispatched").textContent = stats.dispatched;
  document.getElementById("f-manual").textContent = stats.manual;
  document.getElementById("f-open").textContent = total.open ?? 0;
  document.getElementById("f-overdue").textContent = total.overdue_open ?? 0;
  document.getElementById("f-ontime").textContent = pct(total.on_time_closure_rate);
  document.getElementById("updated").textContent = when(stats.now);
}

function renderCharts() {
  const { byUnit, byGrid } = latest;
  const ranked = byUnit.rows.filter(r => r.on_time_closure_rate !== null).slice(0, 10);
  chart.setOption({
    grid: { left: 150, right: 30, top: 10, bottom: 30 },
    xAxis: { type: "value", max: 100, axisLabel: { color: "#8fa6c4", formatter: "{value}%" },
             splitLine: { lineStyle: { color: "#1f3d66" } } },
    yAxis: { type: "category", inverse: true, data: ranked.map(r => r.name), axisLabel: { color: "#e8eef7" } },
    series: [{ type: "bar", data: ranked.map(r => +(100 * r.on_time_closure_rate).toFixed(1)),
               itemStyle: { color: "#3ccf91" }, label: { show: true, position: "right", color: "#e8eef7", formatter: "{c}%" } }],
    tooltip: { trigger: "axis" },
  });
  if (!gridsReady) return;
  const inGrids = byGrid.rows.filter(r => r.key);  // tasks with no grid (a hotline ticket without GPS) are not on the map
  map.setOption({
    // Colour: open tasks in the grid; a grid with overdue ones gets a red border.
    tooltip: { formatter: p => `${p.data ? p.data.label : p.name}<br>${lang === "en" ? "open" : "在办"} ${p.data ? p.data.value : 0}` +
                               `，${lang === "en" ? "overdue" : "超期"} ${p.data ? p.data.overdue : 0}` },
    visualMap: { min: 0, max: Math.max(1, ...inGrids.map(r => r.open)), left: 0, bottom: 0, calculable: true,
                 inRange: { color: ["#1d4f7a", "#f5b942", "#f0605d"] }, textStyle: { color: "#8fa6c4" } },
    series: [{ type: "map", map: "grids", nameProperty: "code", roam: true, zoom: 1.15, selectedMode: false,
               itemStyle: { borderColor: "#0b1d33", borderWidth: 0.3, areaColor: "#17375e" },
               data: inGrids.map(r => ({
                 name: r.key, label: r.name, value: r.open, overdue: r.overdue_open,
                 itemStyle: r.overdue_open > 0 ? { borderColor: "#f0605d", borderWidth: 1.2 } : undefined })) }],
  });
}

function renderTrend() {
  const { rows, bucket } = latest.trends;
  const label = iso => new Date(iso).toLocaleString("zh-CN", bucket === "hour"
    ? { month: "numeric", day: "numeric", hour: "2-digit", hour12: false, timeZone: cityZone }
    : { month: "numeric", day: "numeric", timeZone: cityZone });
  trend.setOption({
    grid: { left: 50, right: 20, top: 30, bottom: 30 }, tooltip: { trigger: "axis" },
    legend: { top: 0, left: "center", textStyle: { color: "#e8eef7" } },
    xAxis: { type: "category", data: rows.map(r => label(r.at)), axisLabel: { color: "#8fa6c4" } },
    yAxis: { type: "value", minInterval: 1, axisLabel: { color: "#8fa6c4" }, splitLine: { lineStyle: { color: "#1f3d66" } } },
    series: Object.entries(SERIES).map(([key, names]) => ({
      name: names[lang === "en" ? 1 : 0], type: "line", smooth: true, data: rows.map(r => r[key]) })),
  }, { replaceMerge: ["series"] });
}

function renderAll() {
  renderFigures(); renderCharts(); renderTrend(); renderBoard(); renderScores(); renderOverdue(); renderAccuracy();
  renderModel();
}

let fingerprint = null, refreshedAt = 0;
const countsOf = stats => [stats.clickhouse_incidents, stats.clickhouse_task_events, stats.manual, stats.deadlettered].join();

async function refresh(force) {
  try {
    const stats = await json("/stats/");
    document.getElementById("updated").textContent = when(stats.now);
    if (!force && countsOf(stats) === fingerprint && Date.now() - refreshedAt < FULL_REFRESH_MS) return;
    const scheme = view.scheme ? `&scheme=${encodeURIComponent(view.scheme)}` : "";
    const [byUnit, byGrid, board, overdue, scores, trends, accuracy, model] = await Promise.all([
      json("/sla/?by=unit"), json("/sla/?by=grid&quantiles=false"), json(`/sla/?by=${view.boardBy}`),
      json(`/overdue/?limit=100${view.prewarned ? "&prewarned=true" : ""}`), json(`/scores/?by=${view.scoresBy}${scheme}`),
      json(`/trends/?bucket=${view.trendBy}`), json(`/dispatch-accuracy/?by=${view.accuracyBy}`), json("/model/")]);
    cityZone = stats.timezone || cityZone;
    latest = { stats, byUnit, byGrid, board, overdue, scores, trends, accuracy, model, now: new Date(stats.now) };
    fingerprint = countsOf(stats);
    refreshedAt = Date.now();
    renderAll();
    document.body.dataset.loaded = "true";
  } catch (error) {
    document.getElementById("updated").textContent = String(error);
  }
}

async function showTimeline(task) {
  const dialog = document.getElementById("timeline");
  const { events } = await json(`/timeline/${encodeURIComponent(task.task_id)}`);
  document.getElementById("timeline-task").textContent = `${task.item_title || task.item_no} · ${task.unit_name}`;
  dialog.querySelector("ol").replaceChildren(...events.map(e => {
    const li = document.createElement("li");
    li.dataset.kind = e.kind;
    const time = document.createElement("time");
    time.textContent = when(e.at);
    const facts = [e.unit_name, e.by && e.by !== e.unit ? `${lang === "en" ? "by" : "操作"} ${e.by}` : "",
                   e.reason || "", e.days ? `${e.days} ${lang === "en" ? "working days" : "个工作日"}` : "",
                   e.score ? SCORE_WORDS[lang][e.score] : "", e.due_at ? `${lang === "en" ? "due" : "时限"} ${when(e.due_at)}` : ""];
    li.append(time, `${KINDS[lang][e.kind] || e.kind} — ${facts.filter(Boolean).join("，")}`);
    return li;
  }));
  if (!dialog.open) dialog.showModal();
}
document.querySelector("#timeline .close").onclick = () => document.getElementById("timeline").close();

async function showGrid(code, label) {
  const rows = await json(`/grids/${code}/tasks`);
  document.getElementById("grid-name").textContent = label || code;
  fill("#grid-tasks", rows.map(r => ({ key: r.task_id, data: r, cells: [
    [r.unit_name, r.unit], [r.item_title, r.item_no],
    [r.overdue ? (lang === "en" ? "overdue" : "超期") : r.status, "", r.overdue ? "bad" : ""], [when(r.finish_by)]] })), showTimeline);
  document.getElementById("grid-panel").hidden = false;
}
map.on("click", p => { if (p.componentType === "series") showGrid(p.name, p.data ? p.data.label : ""); });
document.getElementById("grid-close").onclick = () => { document.getElementById("grid-panel").hidden = true; };

document.querySelectorAll("#overdue th[data-sort]").forEach(th => th.onclick = () => {
  view.sort = { key: th.dataset.sort, desc: view.sort.key === th.dataset.sort ? !view.sort.desc : true };
  renderOverdue();
});
document.getElementById("prewarned").onchange = e => { view.prewarned = e.target.checked; refresh(true); };
document.getElementById("scheme").onchange = e => { view.scheme = e.target.value; refresh(true); };
function toggle(attribute, field) {
  document.querySelectorAll(`[${attribute}]`).forEach(button => button.onclick = () => {
    view[field] = button.getAttribute(attribute);
    document.querySelectorAll(`[${attribute}]`).forEach(b => b.classList.toggle("on", b === button));
    refresh(true);
  });
}
toggle("data-board-by", "boardBy");
toggle("data-accuracy-by", "accuracyBy");
toggle("data-trend-by", "trendBy");
toggle("data-scores-by", "scoresBy");

loadGrids().catch(() => {}).finally(() => { refresh(true); setInterval(() => refresh(false), POLL_MS); });
window.addEventListener("resize", () => { map.resize(); chart.resize(); trend.resize(); });
window.cityops = { map, showGrid, latest: () => latest };  // for the browser test: where a grid is drawn, what was read
