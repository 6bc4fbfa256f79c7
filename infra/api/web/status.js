// A reporter's lookup: the ticket number and the phone the call came from, posted (never in the
// address bar) to /status/lookup; the progress in plain words; a closed ticket's score (回访).
const I18N = { en: { title: "12345 hotline: where is my ticket?", ticket: "Ticket number", phone: "Phone you called from",
  look: "Look up", hint: "Enter the ticket number the hotline gave you and the phone you called from. This page shows neither your report nor any personal data.",
  reported: "Received", unit: "Handled by", item: "Matter", due: "Due by", outcome: "Result", askScore: "Are you satisfied with the result?",
  s3: "Satisfied", s2: "Fairly satisfied", s1: "Not satisfied" } };
const STEPS = ["已受理", "已派单", "已接单", "已办结", "已结案", "已评价"];
const STAGE_EN = { 已受理: "received", 已派单: "sent to the unit", 已接单: "accepted by the unit", 已办结: "done by the unit",
  已结案: "closed", 已评价: "scored", 已退单: "returned by the unit, being sent on", 已挂账: "on hold (cannot be solved within the limits)",
  已直接答复: "answered on the call", 无效工单: "closed as invalid", 重复工单: "closed as a repeat of another ticket" };
const SAID = { zh: { thanks: "感谢您的评价：", notFound: "没有找到该工单：请核对工单编号和来电号码（新工单约一两秒后可查）", busy: "查询过于频繁，请稍后再试",
                     none: "—", invalid: "请填写正确的工单编号和电话号码" },
               en: { thanks: "Thank you for your score: ", notFound: "No such ticket for this phone: check the number and the phone (a new ticket shows within a second or two)",
                     busy: "Too many lookups: try again in a minute", none: "—", invalid: "Enter a valid ticket number and phone" } };
let lang = "zh", shown = null, cityZone = "Asia/Shanghai";
const when = iso => iso ? new Date(iso).toLocaleString("zh-CN", { hour12: false, timeZone: cityZone }) : SAID[lang].none;
const stageWord = stage => lang === "en" ? (STAGE_EN[stage] || stage) : stage;

function say(text, kind) {
  const box = document.getElementById("message");
  box.textContent = text; box.className = kind || "";
}

async function post(path, body) {
  const response = await fetch(path, { method: "POST", cache: "no-store", headers: { "Content-Type": "application/json" },
                                       body: JSON.stringify(body) });
  const data = await response.json().catch(() => ({}));
  if (response.status === 404) throw new Error(SAID[lang].notFound);
  if (response.status === 429) throw new Error(SAID[lang].busy);
  if (response.status === 422) throw new Error(SAID[lang].invalid);
  if (!response.ok) throw new Error(`${response.status} ${data.detail || data.title || ""}`);
  return data;
}

function show(progress) {
  shown = progress;
  const task = progress.task || {};
  document.getElementById("stage").textContent = stageWord(progress.stage);
  const at = STEPS.indexOf(progress.stage);
  document.getElementById("steps").replaceChildren(...STEPS.map((step, n) =>
    element("li", { class: n < at ? "done" : n === at ? "now" : "" }, stageWord(step))));
  document.getElementById("r-reported").textContent = when(progress.reported_at);
  document.getElementById("r-unit").textContent = task.unit_name || SAID[lang].none;
  document.getElementById("r-item").textContent = progress.item_title || SAID[lang].none;
  document.getElementById("r-due").textContent = when(task.finish_by);
  const closedNote = progress.closed_without_dispatch && progress.closed_without_dispatch.note;
  document.getElementById("r-result").textContent = (progress.result && progress.result.text) || closedNote || SAID[lang].none;
  document.getElementById("score").hidden = !progress.can_score;
  document.getElementById("result").hidden = false;
  document.body.dataset.stage = progress.stage;
}

const asked = () => ({ ticket_no: document.getElementById("ticket").value.trim(), phone: document.getElementById("phone").value.replace(/\s/g, "") });

document.getElementById("lookup").onsubmit = async event => {
  event.preventDefault();
  try { say(""); show(await post("/status/lookup", asked())); }
  catch (error) { document.getElementById("result").hidden = true; say(error.message, "error"); }
};
document.querySelectorAll("#score button").forEach(button => { button.onclick = async () => {
  try {
    await post("/status/score", { ...asked(), score: Number(button.dataset.score) });
    document.getElementById("score").hidden = true;
    say(SAID[lang].thanks + button.textContent, "ok");
  } catch (error) { say(error.message, "error"); }
}; });
document.getElementById("lang").onclick = () => {
  lang = lang === "zh" ? "en" : "zh";
  showLanguage(lang, I18N.en);
  if (shown) show(shown);
};
fetch("/stats/", { cache: "no-store" }).then(r => r.json()).then(s => { cityZone = s.timezone || cityZone; }).catch(() => {});
