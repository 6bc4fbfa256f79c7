// A department clerk's workbench: the unit's tasks, most urgent first, and the actions open to each
// (接单, 退单, 延期, 办结, 挂账, 恢复). The unit's key stays in this tab only (words.js keyedCall). Every
// action is answered with the task's new status, or with the api's refusal in words.
const PAGE = 20, KEY = "cityops-department-key";
const I18N = { en: { title: "Department workbench", screen: "Back to the wall screen", key: "Unit key", login: "Sign in",
  open: "Open", overdue: "Overdue", acceptOverdue: "Not accepted in time", prewarned: "Pre-warned",
  paused: "Clock stopped (parked, extension asked)", filter: "Filter", status: "Status", item: "Item",
  allItems: "all items", apply: "Apply", deadline: "Limit", report: "Report", place: "Place", prev: "Previous",
  next: "Next", address: "Address", basis: "Legal basis", limits: "Limits", timeline: "Timeline" } };
const WORDS = {
  zh: { needKey: "请先输入单位密钥并登录", noUnit: "此密钥不代表任何承办单位", pageOf: (a, b) => `第 ${a}–${b} 条`, empty: "没有符合条件的工单",
        openTasks: "在办（全部未结）", allStatuses: "全部", acceptBy: "接单时限", finishBy: "办结时限", warnAt: "预警",
        accept: "接单", return: "退单", extension: "申请延期", complete: "办结", park: "挂账", resume: "恢复办理",
        reason: "退单原因", other: "其他", note: "说明", days: "延期工作日数", result: "办理结果（必填，将告知诉求人）",
        photos: "现场照片链接（每行一个）", parkReason: "挂账原因（必填）", reviewOn: "复查日期", done: (what, status) => `${what}：工单现为「${status}」`,
        required: field => `请填写${field}`, noPoint: "无坐标，显示所在区域", photo: "照片" },
  en: { needKey: "Enter a unit key and sign in first", noUnit: "This key acts for no unit", pageOf: (a, b) => `${a}–${b}`, empty: "No tasks match",
        openTasks: "open (not finished)", allStatuses: "all", acceptBy: "accept by", finishBy: "finish by", warnAt: "pre-warning",
        accept: "Accept", return: "Return", extension: "Ask for an extension", complete: "Complete", park: "Park", resume: "Resume",
        reason: "Reason", other: "other", note: "note", days: "working days", result: "what was done (required; the reporter is told)",
        photos: "photo links, one a line", parkReason: "why it is parked (required)", reviewOn: "review on", done: (what, status) => `${what}: the task is now "${status}"`,
        required: field => `Fill in ${field}`, noPoint: "no coordinates: its area is shown", photo: "photo" },
};
const DEADLINES = { zh: { overdue: "办理超期", accept_overdue: "接单超时", prewarned: "临期预警", paused: "暂停计时", running: "正常", ended: "已结束" },
                    en: { overdue: "overdue", accept_overdue: "not accepted in time", prewarned: "pre-warned", paused: "clock stopped",
                          running: "on time", ended: "ended" } };
const RETURN_REASONS = ["职能不符", "属地不符", "other"];
const STATUS_FILTER = ["open", "dispatched", "accepted", "extension_pending", "parked", "completed", "verified", "closed",
                       "evaluated", "returned", ""];

let lang = "zh", offset = 0, unit = null, places = {}, chosen = null, cityZone = "Asia/Shanghai", minimap = null, grids = null;
const w = key => WORDS[lang][key];
const when = iso => iso ? new Date(iso).toLocaleString("zh-CN", { hour12: false, timeZone: cityZone }) : "—";
const call = (path, body) => keyedCall(KEY, w("needKey"), path, body);
const statusWord = status => STATUS_WORDS[lang][status] || status;

function say(text, kind) {
  const box = document.getElementById("message");
  box.textContent = text; box.className = kind || "";
}

function setLanguage(to) {
  lang = to;
  showLanguage(to, I18N.en);
  fillStatusFilter();
  if (unit) refresh();
}

function fillStatusFilter() {
  const select = document.getElementById("f-status"), was = select.value || "open";
  select.replaceChildren(...STATUS_FILTER.map(s => element("option", { value: s },
    s === "open" ? w("openTasks") : s === "" ? w("allStatuses") : statusWord(s))));
  select.value = was;
}

const deadlineBadge = state => element("span", { class: `badge ${state}` }, DEADLINES[lang][state] || state);
const placeOf = task => {
  const area = places[task.street] || places[task.district] || "";
  return [task.address && task.address.includes(area) ? "" : area, task.address].filter(Boolean).join(" · ") || "—";
};

// A grid worker's or a sensor's report may have no title: its text's opening stands in.
const reportLine = task => task.title || (task.text || "").slice(0, 30);

function taskRow(task) {
  const due = task.status === "dispatched" ? task.accept_by : task.finish_by;
  const tr = element("tr", { "data-task": task.task_id, "data-deadline": task.deadline, "data-status": task.status },
    element("td", {}, deadlineBadge(task.deadline), element("div", { class: "muted" }, when(due))),
    element("td", { title: task.item_no }, task.item_title || task.item_no),
    element("td", {}, element("div", {}, reportLine(task)), element("div", { class: "muted" }, when(task.dispatched_at))),
    element("td", {}, places[task.street] || places[task.district] || "—"),
    element("td", { class: "status" }, statusWord(task.status)));
  tr.onclick = () => showTask(task.task_id);
  if (chosen === task.task_id) tr.classList.add("chosen");
  return tr;
}

async function loadSummary() {
  const summary = await call(`/departments/${unit.code}/summary`);
  document.getElementById("s-open").textContent = summary.open;
  document.getElementById("s-overdue").textContent = summary.by_deadline.overdue;
  document.getElementById("s-accept").textContent = summary.by_deadline.accept_overdue;
  document.getElementById("s-prewarned").textContent = summary.by_deadline.prewarned;
  document.getElementById("s-paused").textContent = summary.by_deadline.paused;
  const select = document.getElementById("f-item"), was = select.value;
  select.replaceChildren(select.options[0], ...summary.items.map(i =>
    element("option", { value: i.item_no }, `${i.item_no} ${i.item_title}（${i.open}/${i.tasks}）`)));
  select.value = [...select.options].some(o => o.value === was) ? was : "";
}

async function loadTasks() {
  const query = new URLSearchParams({ limit: PAGE + 1, offset, status: document.getElementById("f-status").value });
  const item = document.getElementById("f-item").value;
  if (item) query.set("item_no", item);
  const tasks = await call(`/departments/${unit.code}/tasks?${query}`);
  const shown = tasks.slice(0, PAGE);
  document.querySelector("#tasks tbody").replaceChildren(...shown.map(taskRow));
  document.getElementById("page").textContent = shown.length ? w("pageOf")(offset + 1, offset + shown.length) : w("empty");
  document.getElementById("prev").disabled = offset === 0;
  document.getElementById("next").disabled = tasks.length <= PAGE;
}

async function refresh(withDetail = true) {
  try {
    await Promise.all([loadSummary(), loadTasks()]);
    if (chosen && withDetail) await showTask(chosen);
    document.body.dataset.loaded = "true";
  } catch (error) { say(String(error.message || error), "error"); }
}

// The grids a task is in: its grid, else its community's, street's or district's (a grid's community
// code begins with its street's and district's).
function gridsOf(task) {
  const features = grids.features;
  if (task.grid_code) return features.filter(f => f.properties.code === task.grid_code);
  const area = task.community || task.street || task.district;
  return area ? features.filter(f => f.properties.community === area || f.properties.community.startsWith(`${area}-`)) : [];
}

function drawMap(task) {
  if (!minimap) minimap = echarts.init(document.getElementById("minimap"));
  const point = task.location ? [task.location.lon, task.location.lat] : null;
  const around = gridsOf(task);
  const coords = [...around.flatMap(f => f.geometry.coordinates[0]), ...(point ? [point] : [])];
  const all = grids.features.flatMap(f => f.geometry.coordinates[0]);
  const box = points => [0, 1].map(i => [Math.min(...points.map(p => p[i])), Math.max(...points.map(p => p[i]))]);
  const [[x0, x1], [y0, y1]] = box(all);
  const view = coords.length ? box(coords) : null;
  const zoom = view ? 0.7 * Math.min((x1 - x0) / Math.max(view[0][1] - view[0][0], 1e-3), (y1 - y0) / Math.max(view[1][1] - view[1][0], 1e-3)) : 1.1;
  minimap.setOption({
    geo: { map: "grids", nameProperty: "code", roam: true, zoom, center: view ? [(view[0][0] + view[0][1]) / 2, (view[1][0] + view[1][1]) / 2] : undefined,
           itemStyle: { areaColor: "#17375e", borderColor: "#0b1d33", borderWidth: 0.5 }, emphasis: { disabled: true },
           regions: around.map(f => ({ name: f.properties.code, itemStyle: { areaColor: "#2f6aa8" } })) },
    series: [{ type: "scatter", coordinateSystem: "geo", symbolSize: 12, itemStyle: { color: "#f0605d" }, data: point ? [point] : [] }],
    graphic: point ? [] : [{ type: "text", right: 8, bottom: 6, style: { text: w("noPoint"), fill: "#8fa6c4" } }],
  }, true);
}

// The store shows an action within a second or two: the page waits for it (at most 15 s) before it
// lists the unit's tasks again, so the clerk never sees the task as it was.
async function settled(taskId, status) {
  for (let waited = 0; waited < 15000; waited += 500) {
    const task = await call(`/departments/${unit.code}/tasks/${taskId}`).catch(() => null);
    if (task && task.status === status) break;
    await new Promise(resolve => setTimeout(resolve, 500));
  }
  await refresh();
}

function field(tag, attributes) { return element(tag, { ...attributes, "aria-label": attributes.placeholder || "" }); }

// Each action the task is open to, with its required fields; the api judges and answers.
function actionForm(task, action) {
  const fields = {
    accept: () => [], resume: () => [],
    return: () => [element("select", { name: "reason" }, ...RETURN_REASONS.map(r => element("option", { value: r }, r === "other" ? w("other") : r))),
                   field("input", { name: "note", size: 24, placeholder: w("note") })],
    extension: () => [field("input", { name: "days", type: "number", min: 0.5, max: 60, step: 0.5, value: 3, placeholder: w("days") }),
                      field("input", { name: "note", size: 24, placeholder: w("note") })],
    complete: () => [field("textarea", { name: "result", rows: 2, placeholder: w("result") }),
                     field("textarea", { name: "photos", rows: 2, placeholder: w("photos") })],
    park: () => [field("input", { name: "reason", size: 24, placeholder: w("parkReason") }),
                 field("input", { name: "review_on", type: "date", placeholder: w("reviewOn") })],
  }[action]();
  const form = element("div", { class: "action", "data-action": action }, ...fields);
  const value = name => (form.querySelector(`[name=${name}]`) || {}).value?.trim() || "";
  const submit = async () => {
    let body = { note: value("note") };
    if (action === "return") body.reason = value("reason");
    if (action === "extension") body.days = Number(value("days"));
    if (action === "complete") {
      if (!value("result")) return say(w("required")(w("result")), "error");
      body = { ...body, result: value("result"), photos: value("photos").split(/\s+/).filter(Boolean) };
    }
    if (action === "park") {
      if (!value("reason")) return say(w("required")(w("parkReason")), "error");
      body = { ...body, reason: value("reason"), review_on: value("review_on") || null };
    }
    try {
      const answer = await call(`/tasks/${task.task_id}/${action}`, body);
      say(w("done")(w(action), statusWord(answer.status)), "ok");
      document.querySelector(`#tasks tr[data-task='${task.task_id}'] td.status`)?.replaceChildren(statusWord(answer.status));
      await settled(task.task_id, answer.status);
    } catch (error) { say(String(error.message || error), "error"); }
  };
  form.append(element("button", { type: "button", class: action === "return" ? "danger" : "primary", onclick: submit }, w(action)));
  return form;
}

async function showTask(taskId) {
  chosen = taskId;
  document.querySelectorAll("#tasks tbody tr").forEach(tr => tr.classList.toggle("chosen", tr.dataset.task === taskId));
  const task = await call(`/departments/${unit.code}/tasks/${taskId}`);
  const { events } = await (await fetch(`/timeline/${encodeURIComponent(taskId)}`, { cache: "no-store" })).json();
  const detail = document.getElementById("detail");
  detail.dataset.task = taskId;
  detail.dataset.status = task.status;
  document.getElementById("d-title").textContent = reportLine(task) || task.item_title;
  document.getElementById("d-text").replaceChildren(task.text || "",
    ...(task.photo_urls || []).map((url, n) => element("a", { href: url, rel: "noreferrer", target: "_blank" }, ` ${w("photo")} ${n + 1}`)));
  document.getElementById("d-place").textContent = placeOf(task);
  document.getElementById("d-item").textContent = `${task.item_no} ${task.item_title}`;
  document.getElementById("d-basis").textContent = task.legal_basis || "—";
  document.getElementById("d-limits").replaceChildren(deadlineBadge(task.deadline),
    element("div", {}, `${w("acceptBy")} ${when(task.accept_by)}`), element("div", {}, `${w("finishBy")} ${when(task.finish_by)}` +
      (task.finish_warn_at ? `（${w("warnAt")} ${when(task.finish_warn_at)}）` : "")));
  document.getElementById("d-status").textContent = statusWord(task.status);
  document.getElementById("d-timeline").replaceChildren(...(events || []).map(e =>
    element("li", { "data-kind": e.kind }, element("time", {}, when(e.at)),
      `${KINDS[lang][e.kind] || e.kind}${e.reason ? `（${e.reason}）` : ""}${e.days ? ` ${e.days}` : ""}${e.score ? ` ${SCORE_WORDS[lang][e.score]}` : ""}`)));
  document.getElementById("d-actions").replaceChildren(...task.actions.map(a => actionForm(task, a)));
  detail.hidden = false;
  drawMap(task);
}

async function signIn() {
  const typed = document.getElementById("key").value.trim();
  if (typed) sessionStorage.setItem(KEY, typed);
  document.getElementById("key").value = "";
  try {
    const units = await call("/departments/");
    if (!units.length) throw new Error(w("noUnit"));
    const select = document.getElementById("unit");
    select.replaceChildren(...units.map(u => element("option", { value: u.code }, u.name)));
    select.hidden = units.length < 2;
    unit = units[0];
    document.getElementById("unit-name").textContent = unit.name;
    cityZone = (await (await fetch("/stats/", { cache: "no-store" })).json()).timezone || cityZone;
    places = Object.fromEntries((await (await fetch("/units/", { cache: "no-store" })).json()).map(u => [u.code, u.name]));
    grids = await (await fetch("grids.geojson")).json();
    echarts.registerMap("grids", grids);
    say("");
    offset = 0;
    await refresh();
  } catch (error) { say(String(error.message || error), "error"); }
}

fillStatusFilter();
document.getElementById("lang").onclick = () => setLanguage(lang === "zh" ? "en" : "zh");
document.getElementById("login").onclick = signIn;
document.getElementById("key").addEventListener("keydown", e => { if (e.key === "Enter") signIn(); });
document.getElementById("unit").onchange = e => {
  unit = { code: e.target.value, name: e.target.selectedOptions[0].textContent };
  document.getElementById("unit-name").textContent = unit.name;
  chosen = null; document.getElementById("detail").hidden = true; offset = 0; refresh();
};
document.getElementById("apply").onclick = () => { offset = 0; refresh(); };
document.getElementById("prev").onclick = () => { offset = Math.max(0, offset - PAGE); refresh(); };
document.getElementById("next").onclick = () => { offset += PAGE; refresh(); };
// New tasks and passing deadlines every 30 s; the open task's form is left alone (a clerk may be typing).
setInterval(() => { if (unit && !document.hidden) refresh(false); }, 30000);
if (sessionStorage.getItem(KEY)) signIn();
