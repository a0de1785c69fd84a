// The dashboard: reads cmat's JSON API (or, in a file written by `cmat report --html`, the
// same answers embedded as window.CMAT_DATA) and draws it; served live, it reads the API again
// every REFRESH_MS (the server scans for new transcript lines first). No network beyond this
// machine.
"use strict";

// ?refresh=SECONDS in the address changes how often (tests use a short one).
const REFRESH_MS = (Number(new URLSearchParams(location.search).get("refresh")) || 15) * 1000;
const PERIODS = {"7d": ["Last 7 days", 7], "30d": ["Last 30 days", 30],
                 "90d": ["Last 90 days", 90], "all": ["All time", null]};
const RANGED = ["daily", "projects", "enhancements", "tasks", "apps", "providers",
                "suggestions"];

const API = {
  daily: "/api/v1/usage?period=daily&by=model",
  projects: "/api/v1/usage?period=monthly&by=project",
  enhancements: "/api/v1/usage?period=monthly&by=enhancement",
  tasks: "/api/v1/usage?period=monthly&by=task",
  apps: "/api/v1/usage?period=monthly&by=app",
  providers: "/api/v1/usage?period=monthly&by=provider",
  budgets: "/api/v1/budgets",
  alerts: "/api/v1/alerts",
  suggestions: "/api/v1/suggestions",
  blocks: "/api/v1/blocks",
  titles: "/api/v1/titles",
};
const COLOURS = ["#3b6fd8", "#e67e22", "#27ae60", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d",
                 "#d4ac0d", "#2c3e50", "#e84393"];

function money(value) {
  if (value === null || value === undefined) return "unpriced";
  if (value > 0 && value < 0.005) return "<$0.01";
  return "$" + value.toLocaleString("en-US", {minimumFractionDigits: 2, maximumFractionDigits: 2});
}

async function load(name, since) {
  if (window.CMAT_DATA) return window.CMAT_DATA[name] ?? {};
  let url = API[name];
  const join = url.includes("?") ? "&" : "?";
  if (since && RANGED.includes(name)) url += `${join}since=${since}`;
  else if (name === "suggestions" && chosenPeriod() === "all") url += `${join}period=all`;
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

function chosenPeriod() {
  const key = (location.hash || "").replace("#", "");
  return PERIODS[key] ? key : "30d";
}

function sinceOf(period) {
  const days = PERIODS[period][1];
  if (!days) return null;
  const since = new Date(); since.setDate(since.getDate() - (days - 1));
  return localDay(since);
}

function draw(id, config) {  // a chart drawn again replaces the one before it
  const canvas = document.getElementById(id);
  const previous = Chart.getChart(canvas);
  if (previous) previous.destroy();
  return new Chart(canvas, config);
}

function localDay(date) {
  const pad = n => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

function text(id, value) { document.getElementById(id).textContent = value; }

function cell(row, value, numeric) {
  const td = row.insertCell();
  td.textContent = value;
  if (numeric) td.className = "num";
}

function table(id, headers, rows) {
  const element = document.getElementById(id);
  element.replaceChildren();
  const head = element.createTHead().insertRow();
  headers.forEach(([title, numeric]) => {
    const th = document.createElement("th");
    th.textContent = title;
    if (numeric) th.className = "num";
    head.appendChild(th);
  });
  const body = element.createTBody();
  if (!rows.length) { cell(body.insertRow(), "none yet"); return; }
  rows.forEach(values => {
    const row = body.insertRow();
    values.forEach((value, index) => cell(row, value, headers[index][1]));
  });
}

function requestsOf(report, key, value) {
  return report.rows.filter(row => row[key] === value)
    .reduce((sum, row) => sum + row.requests, 0).toLocaleString("en-US");
}

function sumBy(report, key) {
  const totals = new Map();
  report.rows.forEach(row => {
    const name = row[key] ?? "untracked";
    totals.set(name, (totals.get(name) || 0) + row.total_usd);
  });
  return [...totals.entries()].sort((a, b) => b[1] - a[1]);
}

function everyDay(first, last) {
  const days = [];
  for (let day = new Date(first + "T12:00:00"); localDay(day) <= last;
       day.setDate(day.getDate() + 1)) days.push(localDay(day));
  return days;
}

// The days the page is about: a file's range (report --html --since/--until), else the period
// picked (all time: from the first day with usage).
function shownDays(daily, range) {
  const dated = daily.rows.map(row => row.date).sort();
  const today = localDay(new Date());
  if (range) {
    const first = range.since || dated[0] || today;
    const last = range.until || (range.since ? today : dated[dated.length - 1] || today);
    return everyDay(first, last);
  }
  return everyDay(sinceOf(chosenPeriod()) || dated[0] || today, today);
}

function dailyChart(daily, range) {
  const days = shownDays(daily, range);  // every day, those without usage too
  const rows = daily.rows.filter(row => row.date >= days[0] && row.date <= days[days.length - 1]);
  const models = sumBy({rows}, "model").map(([model]) => model);
  const datasets = models.map((model, index) => ({
    label: model.replace(/^claude-/, ""),
    backgroundColor: COLOURS[index % COLOURS.length],
    data: days.map(day => rows.filter(r => r.date === day && r.model === model)
                             .reduce((sum, r) => sum + r.total_usd, 0)),
  }));
  const total = rows.reduce((sum, row) => sum + row.total_usd, 0);
  const used = new Set(rows.map(row => row.date)).size;
  text("total-30d", money(total / days.length));
  text("days-30d", `a day on average; ${used} of ${days.length} days with usage`);
  draw("daily-chart", {
    type: "bar", data: {labels: days, datasets},
    options: {animation: false, maintainAspectRatio: false,
              scales: {x: {stacked: true}, y: {stacked: true, ticks: {callback: v => "$" + v}}},
              plugins: {tooltip: {callbacks: {label: c => `${c.dataset.label}: ${money(c.raw)}`}}}},
  });
  return {days: days.length, datasets: datasets.length};
}

function rangeWords(range) {
  if (!range) return null;
  if (!range.since && !range.until) return "all time";
  if (range.since && range.until) return `${range.since} to ${range.until}`;
  return range.since ? `since ${range.since}` : `until ${range.until}`;
}

function projectChart(projects) {
  const totals = sumBy(projects, "project").slice(0, 10);
  draw("project-chart", {
    type: "bar",
    data: {labels: totals.map(([name]) => String(name).split("/").filter(Boolean).pop() || name),
           datasets: [{label: "USD", data: totals.map(([, usd]) => usd),
                       backgroundColor: COLOURS[0]}]},
    options: {indexAxis: "y", animation: false, maintainAspectRatio: false,
              scales: {x: {ticks: {callback: v => "$" + v}}},
              plugins: {legend: {display: false},
                        tooltip: {callbacks: {label: c => money(c.raw)}}}},
  });
  return totals.length;
}

function budgetBars(status) {
  const element = document.getElementById("budgets");
  element.replaceChildren();
  if (!status.budgets.length) { element.textContent = "No budget set (cmat budget set daily 50)."; }
  status.budgets.forEach(budget => {
    const box = document.createElement("div");
    box.className = "budget";
    const amount = v => budget.unit === "usd" ? money(v) : Math.round(v).toLocaleString("en-US");
    box.textContent = `${budget.label}: ${amount(budget.spent)} of ${amount(budget.limit)} ` +
                      `(${budget.percent.toFixed(0)}%)`;
    const bar = document.createElement("div"); bar.className = "bar";
    const fill = document.createElement("span");
    fill.style.width = Math.min(budget.percent, 100) + "%";
    const highest = Math.max(0, ...status.thresholds.filter(t => budget.percent >= t));
    fill.className = budget.exhausted ? "exhausted" : highest >= 80 ? "warning" : "";
    bar.appendChild(fill); box.appendChild(bar); element.appendChild(box);
  });
  if (status.not_enforced) {  // hooks not installed, or switched off in this project
    const note = document.createElement("p");
    note.textContent = `Not enforced here: ${status.not_enforced}`;
    element.appendChild(note);
  }
}

function suggestionList(found, range) {
  text("savings", money(found.potential_savings_usd));
  text("savings-detail", `of ${money(found.cost_usd)} ${range ? rangeWords(range)
                                                               : "over the last 30 days"}`);
  const list = document.getElementById("suggestions");
  list.replaceChildren();
  if (!found.requests) { list.textContent = "No usage in this period."; }
  else if (!found.suggestions.length) { list.textContent = "Nothing would have cost less."; }
  found.suggestions.forEach(suggestion => {
    const item = document.createElement("li");
    const saving = document.createElement("span");
    saving.className = "saving";
    saving.textContent = `${money(suggestion.savings_usd)}: ${suggestion.title}. `;
    item.append(saving, suggestion.action);
    list.appendChild(item);
  });
}

function blockCard(block, now) {
  text("block-cost", block ? money(block.cost_usd) : "none");
  const fill = document.getElementById("block-progress");
  if (!block) {
    text("block-detail", "nothing used in 5 hours");
    fill.style.width = "0%";
    return;
  }
  const start = new Date(block.start), end = new Date(block.end);
  const elapsed = Math.min(Math.max((now - start) / (end - start), 0), 1);
  fill.style.width = (elapsed * 100).toFixed(0) + "%";
  const rate = block.burn_rate ? `${money(block.burn_rate.cost_per_hour)}/h, ` : "";
  const projected = block.projection ? `${money(block.projection.cost_usd)} by ` : "ends ";
  text("block-detail", `${block.total_tokens.toLocaleString("en-US")} tokens; ${rate}` +
                       `${projected}${end.toLocaleTimeString([], {hour: "2-digit",
                                                                    minute: "2-digit"})}`);
}

function taskName(titles, id) {
  return titles && titles[id] ? `${titles[id]} (${id})` : id;
}

async function main() {
  const range = window.CMAT_DATA ? window.CMAT_DATA.range : null;
  const period = chosenPeriod();
  const since = range ? null : sinceOf(period);
  const names = Object.keys(API);
  const data = Object.fromEntries(
    (await Promise.all(names.map(name => load(name, since)))).map(
      (value, index) => [names[index], value]));
  const label = range ? rangeWords(range) : PERIODS[period][0];
  text("title-all", label);
  text("title-30d", "Per day");
  text("title-daily", `Spend per day, by model (${label.toLowerCase()})`);
  document.getElementById("period").hidden = Boolean(window.CMAT_DATA);
  document.getElementById("period").value = period;
  text("total-all", money(data.daily.total.total_usd));
  const requests = data.daily.total.requests;
  text("requests-all", `${requests.toLocaleString("en-US")} requests` +
                       (requests || range || period === "all" ? ""
                        : ": the Period “All” shows the whole history"));
  const drawn = dailyChart(data.daily, range);
  projectChart(data.projects);
  budgetBars(data.budgets);
  blockCard(data.blocks.blocks[0], data.blocks.now ? new Date(data.blocks.now) : new Date());
  table("enhancements", [["Enhancement"], ["Cost", true]],
        sumBy(data.enhancements, "enhancement").slice(0, 10).map(([n, usd]) => [n, money(usd)]));
  table("tasks", [["Task"], ["Cost", true]],
        sumBy(data.tasks, "task").slice(0, 10).map(
          ([n, usd]) => [taskName(data.titles, n), money(usd)]));
  table("apps", [["Coding agent"], ["Requests", true], ["Cost", true]],
        sumBy(data.apps, "app").map(([n, usd]) => [n, requestsOf(data.apps, "app", n),
                                                   money(usd)]));
  table("providers", [["Provider"], ["Cost", true]],
        sumBy(data.providers, "provider").map(([n, usd]) => [n, money(usd)]));
  table("alerts", [["Fired"], ["Level"], ["Alert"]], data.alerts.slice(0, 10).map(alert => [
    new Date(alert.fired_at * 1000).toLocaleString(), alert.level, alert.message]));
  suggestionList(data.suggestions, range || (since ? {since} : period === "all" ? {} : null));
  text("updated", window.CMAT_DATA ? `as of ${window.CMAT_DATA.generated_at}`
                                    : `updated ${new Date().toLocaleTimeString()}`);
  document.body.dataset.refreshes = Number(document.body.dataset.refreshes || 0) + 1;
  document.body.dataset.days = drawn.days;
  document.body.dataset.models = drawn.datasets;
  document.body.dataset.ready = "1";
}

async function refresh() {
  const element = document.getElementById("error");
  try {
    await main();
    element.hidden = true;
  } catch (error) {  // said on the page; the next refresh tries again
    if (document.body.dataset.ready !== "1") document.body.dataset.ready = "error";
    element.hidden = false;
    element.textContent = `cmat dashboard: ${error.message}`;
    console.error(error);
  }
}

refresh();
if (!window.CMAT_DATA) {  // served live: new sessions appear without reloading the page
  setInterval(refresh, REFRESH_MS);
  window.addEventListener("hashchange", refresh);
  document.getElementById("period").addEventListener("change", event => {
    location.hash = event.target.value;
  });
}
