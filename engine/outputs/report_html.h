// report.html: a run's self-contained report (docs/design.md §7), readable offline and
// attachable anywhere: no script, no external stylesheet, font or image, charts as inline SVG.
//
// Sections, top to bottom:
//   header     title (the run name), subtitle (the caller's line: device, start date, ...),
//              last step, elapsed time, and the final (last finite) value of every metric;
//   charts     one line chart per metric, x = step: loss, learning_rate, grad_norm,
//              tokens_per_second first, then every eval_* metric, then any other metric, each
//              with ticked and labelled axes and its last value printed; a metric is every
//              numeric top-level field of an event except step, epoch and elapsed_seconds
//              (metrics_log.h); null and non-finite values are skipped and counted;
//   refactor spectra  for events of kind "refactor" whose extra.spectra is an array of arrays
//              of numbers (one spectrum per adapted layer): one small chart per event with
//              every spectrum drawn as σ_i against i (docs/design.md §4: each refactor is
//              logged with its spectra);
//   predictions  a table of the given sample eval predictions, one column per field;
//   config     the resolved config YAML in a <pre>.
// Every piece of text that comes from outside (names, predictions, config) is HTML-escaped.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace smol {

struct ReportInput {
  std::string title;
  std::string subtitle;
  std::string config_yaml;
  std::vector<nlohmann::json> events;       // as read from metrics.jsonl
  std::vector<nlohmann::json> predictions;  // objects; string fields shown as text
};

// The whole page.
std::string render_report_html(const ReportInput& input);

// Renders and writes the page through write_file_atomically, so a reader never sees half.
void write_report_html(const std::string& path, const ReportInput& input);

// &, <, >, " and ' as character references: safe in element text and quoted attributes.
std::string html_escape(const std::string& text);

}  // namespace smol
