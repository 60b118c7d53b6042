// report.html rendering (sections and rules in report_html.h).
#include "engine/outputs/report_html.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "common/atomic_file.h"
#include "engine/outputs/progress.h"
#include "engine/outputs/svg_chart.h"

namespace smol {
namespace {

// Fields of a metrics.jsonl event that are not metrics (docs/design.md §7, metrics_log.h).
const std::set<std::string> kNonMetricFields = {"kind", "step", "epoch", "elapsed_seconds",
                                                "extra"};
// The HF Trainer curves a reader looks for first, in this order.
const std::vector<std::string> kLeadingMetrics = {"loss", "learning_rate", "grad_norm",
                                                  "tokens_per_second"};
// More spectrum charts than this are thinned to evenly spaced events (first and last kept).
constexpr size_t kMaxSpectrumCharts = 48;

struct MetricSeries {
  std::vector<std::pair<double, double>> points;  // (step, value), finite only
  size_t skipped = 0;                             // null or non-finite values
};

const char* kStyle = R"(<style>
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1500px; padding: 0 1em;
       color: #222; }
h1 { margin-bottom: 0.1em; } .subtitle { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5em 0; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
table.predictions td { white-space: pre-wrap; font-family: ui-monospace, monospace;
                       font-size: 0.85em; max-width: 40em; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
svg.chart { background: #fff; border: 1px solid #ddd; }
svg.chart .plot { fill: #fcfcfc; stroke: #999; }
svg.chart .grid { stroke: #e4e4e4; }
svg.chart .tick { font-size: 10px; fill: #555; }
svg.chart .axis-label { font-size: 11px; fill: #333; }
svg.chart .chart-title { font-size: 13px; font-weight: bold; }
svg.chart .chart-caption { font-size: 11px; fill: #444; }
svg.chart .empty { font-size: 12px; fill: #999; }
svg.chart .series { fill: none; stroke-width: 1.5; }
.note { color: #666; font-size: 0.9em; }
</style>
)";

bool is_finite_number(const nlohmann::json& value) {
  return value.is_number() && std::isfinite(value.get<double>());
}

// A JSON value as display text: strings as they are, anything else as compact JSON.
std::string display_text(const nlohmann::json& value) {
  if (value.is_string()) return value.get<std::string>();
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Every metric's series, keyed by name, from the events that carry a numeric step.
std::map<std::string, MetricSeries> collect_metrics(const std::vector<nlohmann::json>& events) {
  std::map<std::string, MetricSeries> metrics;
  for (const nlohmann::json& event : events) {
    if (!event.is_object() || !is_finite_number(event.value("step", nlohmann::json()))) continue;
    const double step = event["step"].get<double>();
    for (const auto& [name, value] : event.items()) {
      if (kNonMetricFields.count(name) != 0) continue;
      if (is_finite_number(value)) {
        metrics[name].points.emplace_back(step, value.get<double>());
      } else if (value.is_null() || value.is_number()) {  // written null, or NaN/inf in memory
        ++metrics[name].skipped;
      }
    }
  }
  for (auto& [name, series] : metrics) {  // a resumed log may repeat steps out of order
    std::stable_sort(series.points.begin(), series.points.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
  }
  return metrics;
}

// Chart order: the leading HF curves, then eval_* metrics, then the rest (each by name).
std::vector<std::string> chart_order(const std::map<std::string, MetricSeries>& metrics) {
  std::vector<std::string> order;
  for (const std::string& name : kLeadingMetrics) {
    if (metrics.count(name) != 0) order.push_back(name);
  }
  for (const bool eval_pass : {true, false}) {
    for (const auto& [name, series] : metrics) {
      const bool is_eval = name.rfind("eval_", 0) == 0;
      const bool leading =
          std::find(kLeadingMetrics.begin(), kLeadingMetrics.end(), name) != kLeadingMetrics.end();
      if (is_eval == eval_pass && !leading) order.push_back(name);
    }
  }
  return order;
}

std::string step_text(double step) {
  return std::to_string(static_cast<long long>(std::llround(step)));
}

std::string render_header(const ReportInput& input,
                          const std::map<std::string, MetricSeries>& metrics,
                          const std::vector<std::string>& order) {
  std::string html = "<h1>" + html_escape(input.title) + "</h1>\n";
  if (!input.subtitle.empty()) {
    html += "<p class=\"subtitle\">" + html_escape(input.subtitle) + "</p>\n";
  }
  double last_step = -INFINITY, elapsed = -INFINITY;
  for (const nlohmann::json& event : input.events) {
    if (!event.is_object()) continue;
    if (is_finite_number(event.value("step", nlohmann::json()))) {
      last_step = std::max(last_step, event["step"].get<double>());
    }
    if (is_finite_number(event.value("elapsed_seconds", nlohmann::json()))) {
      elapsed = std::max(elapsed, event["elapsed_seconds"].get<double>());
    }
  }
  html += "<table class=\"summary\">\n";
  html += "<tr><th>events</th><td>" + std::to_string(input.events.size()) + "</td></tr>\n";
  if (std::isfinite(last_step)) {
    html += "<tr><th>last step</th><td>" + step_text(last_step) + "</td></tr>\n";
  }
  if (std::isfinite(elapsed)) {
    html += "<tr><th>elapsed</th><td>" + format_duration(elapsed) + "</td></tr>\n";
  }
  html += "</table>\n";
  if (order.empty()) return html;
  html +=
      "<h2>Final metrics</h2>\n<table class=\"final\">\n"
      "<tr><th>metric</th><th>last value</th><th>at step</th></tr>\n";
  for (const std::string& name : order) {
    const MetricSeries& series = metrics.at(name);
    if (series.points.empty()) continue;
    const auto& [step, value] = series.points.back();
    html += "<tr><td>" + html_escape(name) + "</td><td>" + format_chart_number(value) +
            "</td><td>" + step_text(step) + "</td></tr>\n";
  }
  return html + "</table>\n";
}

std::string render_metric_charts(const std::map<std::string, MetricSeries>& metrics,
                                 const std::vector<std::string>& order) {
  std::string html = "<h2>Metrics</h2>\n";
  if (order.empty()) return html + "<p class=\"note\">no metrics logged</p>\n";
  html += "<div class=\"charts\">\n";
  for (const std::string& name : order) {
    const MetricSeries& series = metrics.at(name);
    LineChart chart;
    chart.title = name;
    chart.x_label = "step";
    chart.y_label = name;
    if (!series.points.empty()) {
      chart.caption = "last " + format_chart_number(series.points.back().second) + " at step " +
                      step_text(series.points.back().first);
    }
    if (series.skipped != 0) {
      chart.caption += (chart.caption.empty() ? "" : "; ") + std::to_string(series.skipped) +
                       " non-finite value(s) skipped";
    }
    chart.markers = series.points.size() <= 60;  // sparse curves (evals) read better as dots
    chart.series.push_back({series.points, "#1f6fb4"});
    html += render_line_chart_svg(chart);
  }
  return html + "</div>\n";
}

// The spectra a refactor event carries after the refactor (extra.spectra_after, one array of
// singular values per layer, as engine/train/trainer.cpp writes it) if it is an array of arrays
// of numbers (nulls allowed and skipped); false otherwise.
bool read_spectra(const nlohmann::json& event, std::vector<std::vector<double>>& spectra) {
  if (!event.contains("extra") || !event["extra"].is_object()) return false;
  const nlohmann::json& value = event["extra"].value("spectra_after", nlohmann::json());
  if (!value.is_array()) return false;
  spectra.clear();
  for (const nlohmann::json& spectrum : value) {
    if (!spectrum.is_array()) return false;
    std::vector<double>& row = spectra.emplace_back();
    for (const nlohmann::json& sigma : spectrum) {
      if (!sigma.is_number() && !sigma.is_null()) return false;
      row.push_back(sigma.is_number() ? sigma.get<double>() : NAN);
    }
  }
  return true;
}

std::string render_refactor_spectra(const std::vector<nlohmann::json>& events) {
  std::vector<const nlohmann::json*> refactors;
  for (const nlohmann::json& event : events) {
    if (event.is_object() && event.value("kind", nlohmann::json()) == "refactor" &&
        event.contains("extra") && event["extra"].is_object() &&
        event["extra"].contains("spectra_after")) {
      refactors.push_back(&event);
    }
  }
  if (refactors.empty()) return "";
  std::string html =
      "<h2>Refactor spectra</h2>\n<p class=\"note\">One chart per refactor event: each line is "
      "one adapted layer's spectrum after the refactor, &sigma;<sub>i</sub> of B&middot;A against "
      "i.</p>\n";
  std::vector<size_t> shown;
  if (refactors.size() <= kMaxSpectrumCharts) {
    for (size_t i = 0; i < refactors.size(); ++i) shown.push_back(i);
  } else {
    for (size_t k = 0; k < kMaxSpectrumCharts; ++k) {
      shown.push_back(k * (refactors.size() - 1) / (kMaxSpectrumCharts - 1));
    }
    html += "<p class=\"note\">" + std::to_string(kMaxSpectrumCharts) + " of " +
            std::to_string(refactors.size()) + " refactor events shown, evenly spaced.</p>\n";
  }
  html += "<div class=\"charts\">\n";
  std::vector<std::vector<double>> spectra;
  for (const size_t index : shown) {
    const nlohmann::json& event = *refactors[index];
    const std::string step = is_finite_number(event.value("step", nlohmann::json()))
                                 ? step_text(event["step"].get<double>())
                                 : std::string("?");
    if (!read_spectra(event, spectra)) {
      html += "<p class=\"note\">step " + step +
              ": extra.spectra_after is not an array of arrays of numbers; not drawn.</p>\n";
      continue;
    }
    LineChart chart;
    chart.title = "step " + step;
    chart.caption = std::to_string(spectra.size()) + " layer(s)";
    chart.x_label = "i";
    chart.y_label = "sigma_i";
    chart.width = 300;
    chart.height = 190;
    for (size_t layer = 0; layer < spectra.size(); ++layer) {
      ChartSeries series;
      // Hues spread round the colour wheel so neighbouring layers differ.
      series.color = "hsl(" + std::to_string(static_cast<int>(layer * 47 % 360)) + ",65%,42%)";
      for (size_t i = 0; i < spectra[layer].size(); ++i) {
        series.points.emplace_back(static_cast<double>(i + 1), spectra[layer][i]);
      }
      chart.series.push_back(std::move(series));
    }
    html += render_line_chart_svg(chart);
  }
  return html + "</div>\n";
}

std::string render_predictions(const std::vector<nlohmann::json>& predictions) {
  std::string html = "<h2>Sample predictions</h2>\n";
  if (predictions.empty()) return html + "<p class=\"note\">no predictions given</p>\n";
  std::vector<std::string> columns;  // every field, in first-seen order
  for (const nlohmann::json& prediction : predictions) {
    if (!prediction.is_object()) continue;
    for (const auto& [name, value] : prediction.items()) {
      if (std::find(columns.begin(), columns.end(), name) == columns.end()) {
        columns.push_back(name);
      }
    }
  }
  html += "<table class=\"predictions\">\n<tr><th>#</th>";
  for (const std::string& column : columns) html += "<th>" + html_escape(column) + "</th>";
  html += "</tr>\n";
  for (size_t row = 0; row < predictions.size(); ++row) {
    const nlohmann::json& prediction = predictions[row];
    html += "<tr><td>" + std::to_string(row + 1) + "</td>";
    if (!prediction.is_object()) {
      html += "<td colspan=\"" + std::to_string(std::max<size_t>(columns.size(), 1)) + "\">" +
              html_escape(display_text(prediction)) + "</td></tr>\n";
      continue;
    }
    for (const std::string& column : columns) {
      html += "<td>";
      if (prediction.contains(column)) html += html_escape(display_text(prediction[column]));
      html += "</td>";
    }
    html += "</tr>\n";
  }
  return html + "</table>\n";
}

std::string render_config(const std::string& config_yaml) {
  std::string html = "<h2>Resolved config</h2>\n";
  if (config_yaml.empty()) return html + "<p class=\"note\">no config given</p>\n";
  return html + "<pre class=\"config\">" + html_escape(config_yaml) + "</pre>\n";
}

}  // namespace

std::string html_escape(const std::string& text) {
  std::string escaped;
  escaped.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&':
        escaped += "&amp;";
        break;
      case '<':
        escaped += "&lt;";
        break;
      case '>':
        escaped += "&gt;";
        break;
      case '"':
        escaped += "&quot;";
        break;
      case '\'':
        escaped += "&#39;";
        break;
      default:
        escaped += c;
    }
  }
  return escaped;
}

std::string render_report_html(const ReportInput& input) {
  const std::map<std::string, MetricSeries> metrics = collect_metrics(input.events);
  const std::vector<std::string> order = chart_order(metrics);
  std::string html = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  html += "<title>" + html_escape(input.title) + "</title>\n";
  html += kStyle;
  html += "</head>\n<body>\n";
  html += render_header(input, metrics, order);
  if (input.events.empty()) {
    html += "<h2>Metrics</h2>\n<p class=\"note\">no events yet</p>\n";
  } else {
    html += render_metric_charts(metrics, order);
    html += render_refactor_spectra(input.events);
  }
  html += render_predictions(input.predictions);
  html += render_config(input.config_yaml);
  return html + "</body>\n</html>\n";
}

void write_report_html(const std::string& path, const ReportInput& input) {
  write_file_atomically(path, render_report_html(input));
}

}  // namespace smol
