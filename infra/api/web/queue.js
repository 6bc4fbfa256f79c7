// The operator's key stays in this tab only (words.js keyedCall); every call sends it as a bearer token.
const PAGE = 20;
const I18N = { en: { title: "Operator queue", screen: "Back to the wall screen", key: "Operator key", login: "Sign in",
  filter: "Filter", reason: "Reason", klass: "Class", district: "District", all: "all", apply: "Apply", waiting: "Waiting",
  queued: "Queued", report: "Report", place: "Place", why: "Why it waits", actions: "Ruling", prev: "Previous", next: "Next" } };
const WORDS = {
  zh: { dispatchTo: "派至", other: "其他事项编号", dispatch: "派单", closeAs: "不派单办结", answered: "已直接答复",
        invalid: "无效诉求", duplicate: "重复诉求", note: "说明（必填）", close: "办结", sent: "已提交：", needKey: "请先输入操作员密钥并登录",
        noteRequired: "不派单办结须填写说明", pageOf: (a, b, n) => `${a}–${b} / 共 ${n} 条`, empty: "队列为空" },
  en: { dispatchTo: "Dispatch to", other: "other item number", dispatch: "Dispatch", closeAs: "Close without dispatch",
        answered: "answered on the call", invalid: "invalid", duplicate: "duplicate", note: "note (required)", close: "Close",
        sent: "sent: ", needKey: "Enter an operator key and sign in first", noteRequired: "Closing without a dispatch needs a note",
        pageOf: (a, b, n) => `${a}–${b} of ${n}`, empty: "The queue is empty" },
};
const SOURCES = { zh: { hotline: "12345热线", grid: "网格上报", sensor: "物联感知", whistle: "街乡吹哨" },
                  en: { hotline: "12345 hotline", grid: "grid worker", sensor: "sensor", whistle: "whistle" } };
// Why a report waits, in Chinese: the pipeline writes its reasons in English (pipeline/route.py,
// pipeline/classify.py); each known opening is said in Chinese, the figures and codes kept, and the
// original stays on hover. An opening not listed here is shown as written.
const REASONS_ZH = [
  [/^low confidence ([\d.]+) for item (\S+)/, m => `置信度 ${m[1]} 低于自动派单阈值（最可能的事项 ${m[2]}）`],
  [/^item (\S+) is territorial \(属地\) but the incident's street is unknown/, m => `${m[1]} 为属地事项，但诉求所在街道不明`],
  [/^no duty-list keyword in the text/, () => "文本中没有职责清单关键词"],
  [/^outside the classes the model knows/, () => "不属于模型已学过的类别，也没有事项用语相符"],
  [/^摊派 refused/, () => "拒绝摊派：职责清单未让该街道或社区承担此事项"],
  [/^item (\S+) does not apply here/, m => `事项 ${m[1]} 在本地清单中不适用`],
  [/^item (\S+) is not in list (\S+)/, m => `事项 ${m[1]} 不在清单 ${m[2]} 中`],
  [/^unknown units/, () => "所选单位不在单位名录中"],
  [/^whistle summons units not in the registry/, () => "吹哨点名的单位不在单位名录中"],
  [/^returned by (\S+) \(([^:)]+)/, m => `被 ${places[m[1]] || m[1]} 退单（${m[2]}）`],
  [/^no item in force here handles sensor kind (\S+)/, m => `本地在用清单中没有处理${sensorZh(m[1])}读数的事项`],
  [/^(\S+) reading without a value/, m => `${sensorZh(m[1])}读数没有数值`],
  [/^(\S+) reading in (\S+); the rules are in (.+)$/, m => `${sensorZh(m[1])}读数单位为 ${m[2]}，清单规则的单位为 ${m[3]}`],
  [/^(\S+) ([\d.eE+-]+) (\S+) is below every rule \(from ([\d.]+) \S+: (\S+)\)/,
   m => `${sensorZh(m[1])}读数 ${m[2]}${m[3]} 低于所有规则（最低 ${m[4]}${m[3]}：${m[5]}）`],
];
const SENSORS_ZH = { water_level: "水位", manhole_tilt: "井盖倾斜", smoke: "烟感", noise: "噪声", gas: "燃气浓度",
                     air_quality: "空气质量" };
const sensorZh = kind => SENSORS_ZH[kind] || kind;
const EVIDENCE_ZH = [[/model: outside the classes it knows/g, "模型：不属于已知类别"], [/model: /g, "模型："],
  [/no item's words in the text: the general item of (\S+)/g, "文本中没有事项用语，按 $1 类的兜底事项"],
  [/keywords: /g, "关键词："], [/item words: /g, "事项用语："], [/close call: /g, "难以区分："],
  [/repeats incident (\S+) \(same caller, near-identical text\)/g, "同一来电人重复反映（事件 $1）"],
  [/next candidate/g, "已无其他候选"], [/; /g, "；"], [/ vs /g, " 对 "], [/ \(/g, "（"], [/\)/g, "）"]];
function reasonText(reason) {
  if (lang !== "zh" || !reason) return reason || "";
  const known = REASONS_ZH.find(([pattern]) => pattern.test(reason));
  if (!known) return reason;
  const [pattern, say] = known;
  const details = [...reason.matchAll(/\(([^()]*(?:\([^()]*\)[^()]*)*)\)/g)].map(d => d[1])
    .filter(d => /model: |keywords: |item words: /.test(d));
  const repeats = reason.match(/; (repeats incident .*)$/);
  const evidence = [...details, ...(repeats ? [repeats[1]] : [])]
    .map(d => EVIDENCE_ZH.reduce((text, [from, to]) => text.replace(from, to), d));
  return say(reason.match(pattern)) + (evidence.length ? `；${evidence.join("；")}` : "");
}
let lang = "zh", offset = 0, items = {}, places = {};
const w = key => WORDS[lang][key];
function setLanguage(to) {
  lang = to;
  showLanguage(to, I18N.en);
  load();
}
document.getElementById("lang").onclick = () => setLanguage(lang === "zh" ? "en" : "zh");
let cityZone = "Asia/Shanghai";  // the api says which (/stats/ `timezone`)
const when = iso => new Date(iso).toLocaleString("zh-CN", { hour12: false, timeZone: cityZone });

function say(text, kind) {
  const box = document.getElementById("message");
  box.textContent = text; box.className = kind || "";
}

const call = (path, body) => keyedCall("cityops-operator-key", w("needKey"), path, body);

function itemLabel(number) {
  const item = items[number];
  return item ? `${number} ${item.title}（${item.primary_unit_name}）` : number;
}

function row(entry) {
  const tr = element("tr", { "data-incident": entry.incident_id });
  const ruled = text => { tr.className = "done"; say(w("sent") + text, "ok"); };
  const dispatch = async number => {
    try {
      const sent = await call(`/operator/queue/${entry.incident_id}/dispatch`, { item_no: number });
      ruled(`${itemLabel(number)} (${sent.decision_id})`);
    } catch (error) { say(String(error.message || error), "error"); }
  };
  const candidates = element("div", { class: "candidates" }, element("span", { class: "muted" }, w("dispatchTo") + " "),
    ...(entry.candidates || []).slice(0, 3).map(number =>
      element("button", { type: "button", class: "primary", "data-item": number, onclick: () => dispatch(number) }, itemLabel(number))));
  const other = element("input", { list: "items", size: 12, placeholder: w("other"), class: "other-item" });
  const closeReason = element("select", { class: "close-reason" },
    ...["answered", "invalid", "duplicate"].map(r => element("option", { value: r }, w(r))));
  const note = element("input", { size: 18, placeholder: w("note"), class: "close-note" });
  const close = async () => {
    if (!note.value.trim()) return say(w("noteRequired"), "error");
    try {
      await call(`/operator/queue/${entry.incident_id}/close`, { reason: closeReason.value, note: note.value.trim() });
      ruled(`${w("closeAs")}: ${w(closeReason.value)}`);
    } catch (error) { say(String(error.message || error), "error"); }
  };
  const place = [places[entry.district] || entry.district, places[entry.street] || entry.street].filter(Boolean).join(" ");
  tr.append(
    element("td", {}, when(entry.queued_at), element("div", { class: "muted" }, SOURCES[lang][entry.source] || entry.source || "")),
    element("td", { class: "text" }, element("div", { class: "title" }, entry.title || ""), element("div", {}, entry.text || "")),
    element("td", { title: [entry.district, entry.street].filter(Boolean).join(" / ") }, place || "—"),
    element("td", { class: "reason", title: entry.reason || "" }, reasonText(entry.reason),
      entry.tanpai_refused ? element("div", { class: "muted" }, lang === "zh" ? "拒绝摊派" : "摊派 refused") : null),
    element("td", { class: "actions" }, candidates,
      element("div", {}, other, " ", element("button", { type: "button", class: "primary dispatch-other",
        onclick: () => other.value.trim() && dispatch(other.value.trim().split(" ")[0]) }, w("dispatch"))),
      element("div", {}, element("span", { class: "muted" }, w("closeAs") + " "), closeReason, " ", note, " ",
        element("button", { type: "button", class: "danger close-without", onclick: close }, w("close")))));
  return tr;
}

async function load() {
  const query = new URLSearchParams({ limit: PAGE, offset });
  const reason = document.getElementById("f-reason").value.trim();
  if (reason) query.set("reason", reason);
  const klass = document.getElementById("f-class").value;
  if (klass) query.set("top_class", klass);
  const district = document.getElementById("f-district").value;
  if (district) query.set("district", district);
  try {
    const page = await call(`/operator/queue?${query}`);
    document.getElementById("total").textContent = page.total;
    document.querySelector("#queue tbody").replaceChildren(...page.items.map(row));
    document.getElementById("page").textContent = page.total ? w("pageOf")(offset + 1, offset + page.items.length, page.total) : w("empty");
    document.getElementById("prev").disabled = offset === 0;
    document.getElementById("next").disabled = offset + page.items.length >= page.total;
    document.body.dataset.loaded = "true";
  } catch (error) { say(String(error.message || error), "error"); }
}

function signIn() {
  sessionStorage.setItem("cityops-operator-key", document.getElementById("key").value.trim());
  document.getElementById("key").value = "";
  start();
}

async function start() {
  try {
    const list = await call("/operator/items");
    items = Object.fromEntries(list.map(i => [i.number, i]));
    document.getElementById("items").replaceChildren(...list.map(i => element("option", { value: `${i.number} ${i.title}` })));
    const classes = [...new Set(list.map(i => i.top_class))];
    const select = document.getElementById("f-class");
    select.replaceChildren(select.options[0], ...classes.map(c => element("option", { value: c }, c)));
    cityZone = (await (await fetch("/stats/", { cache: "no-store" })).json()).timezone || cityZone;
    const units = await (await fetch("/units/", { cache: "no-store" })).json();
    places = Object.fromEntries(units.map(u => [u.code, u.name]));
    const byDistrict = document.getElementById("f-district");
    byDistrict.replaceChildren(byDistrict.options[0],
      ...units.filter(u => u.kind === "district").map(u => element("option", { value: u.code }, u.name)));
    say("");
    offset = 0;
    await load();
  } catch (error) { say(String(error.message || error), "error"); }
}
document.getElementById("login").onclick = signIn;
document.getElementById("key").addEventListener("keydown", e => { if (e.key === "Enter") signIn(); });
document.getElementById("apply").onclick = () => { offset = 0; load(); };
document.getElementById("prev").onclick = () => { offset = Math.max(0, offset - PAGE); load(); };
document.getElementById("next").onclick = () => { offset += PAGE; load(); };
if (sessionStorage.getItem("cityops-operator-key")) start();
