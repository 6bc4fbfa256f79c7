// What the pages share (loaded before each page's own script): the words for a task's events, statuses
// and scores, an element builder, and calls with a key kept in this tab only (sessionStorage) whose
// refusals (RFC 9457 problem documents) become one sentence naming the status, the detail and the fields.
const KINDS = {
  zh: { dispatched: "派单", accepted: "接单", returned: "退单", completed: "办结", verified: "核查通过", rework: "返工",
        closed: "结案", evaluated: "评价", extension_requested: "申请延期", extension_approved: "批准延期",
        extension_refused: "驳回延期", supervised: "督办", escalated: "升级督办", parked: "挂账", resumed: "恢复办理",
        merged: "合并同类诉求", prewarning: "预警", overdue: "超期", review_due: "挂账复查到期" },
  en: { dispatched: "dispatched", accepted: "accepted", returned: "returned", completed: "completed", verified: "verified",
        rework: "sent back for rework", closed: "closed", evaluated: "evaluated", extension_requested: "extension requested",
        extension_approved: "extension approved", extension_refused: "extension refused", supervised: "pressed (督办)",
        escalated: "escalated", parked: "parked", resumed: "resumed", merged: "a repeat report joined",
        prewarning: "pre-warning", overdue: "overdue", review_due: "review due" },
};
const SCORE_WORDS = { zh: { 1: "不满意", 2: "基本满意", 3: "满意" }, en: { 1: "dissatisfied", 2: "fairly satisfied", 3: "satisfied" } };
const STATUS_WORDS = {
  zh: { dispatched: "待接单", accepted: "办理中", extension_pending: "延期审核中", parked: "挂账", completed: "已办结待核查",
        verified: "核查通过", closed: "已结案", evaluated: "已评价", returned: "已退单" },
  en: { dispatched: "to accept", accepted: "in hand", extension_pending: "extension asked", parked: "parked",
        completed: "completed, to check", verified: "checked", closed: "closed", evaluated: "evaluated", returned: "returned" },
};

// The page's own Chinese words (its data-i18n elements as the HTML writes them), to switch back to.
const PAGE_ZH = Object.fromEntries([...document.querySelectorAll("[data-i18n]")].map(el => [el.dataset.i18n, el.textContent]));
const pageWord = (lang, english, key) => (lang === "en" ? english : PAGE_ZH)[key];

// The page's labels in `to` ("zh" or "en", from `english`), the switch offering the other language.
function showLanguage(to, english) {
  document.querySelectorAll("[data-i18n]").forEach(el => { el.textContent = pageWord(to, english, el.dataset.i18n); });
  document.getElementById("lang").textContent = to === "en" ? "中文" : "English";
  document.documentElement.lang = to === "en" ? "en" : "zh-CN";
}

function element(tag, attributes = {}, ...children) {
  const el = document.createElement(tag);
  Object.entries(attributes).forEach(([k, v]) => {
    if (k === "onclick") el.onclick = v; else if (v !== undefined && v !== null && v !== false) el.setAttribute(k, v);
  });
  el.append(...children.filter(c => c !== null && c !== undefined));
  return el;
}

async function keyedCall(storageKey, needKey, path, body) {
  const key = sessionStorage.getItem(storageKey);
  if (!key) throw new Error(needKey);
  const response = await fetch(path, { method: body ? "POST" : "GET", cache: "no-store",
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: body ? JSON.stringify(body) : undefined });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const fields = (data.errors || []).map(e => `${e.field}: ${e.message}`).join("; ");
    throw new Error(`${response.status} ${data.detail || data.title || ""}${fields ? " — " + fields : ""}`);
  }
  return data;
}
