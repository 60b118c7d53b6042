// SVG line-chart rendering (see svg_chart.h).
#include "engine/outputs/svg_chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <tuple>

#include "engine/outputs/report_html.h"

namespace smol {
namespace {

// Plot area margins in px: room for y tick labels on the left, the title on top, x tick
// labels and the x label below.
constexpr double kLeft = 62, kRight = 14, kTop = 38, kBottom = 40;

std::string fixed2(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.2f", value);
  return buffer;
}

// "%.6g" of a tick, with the rounding residue of k·step (e.g. 3 × 0.1) snapped to zero.
std::string tick_label(double value, double step) {
  if (std::fabs(value) < std::fabs(step) * 1e-9) value = 0.0;
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.6g", value);
  return buffer;
}

// [lo, hi] widened so that a flat series still has a height and lines do not touch the frame.
std::pair<double, double> padded_range(double lo, double hi, double fraction) {
  if (hi > lo) {
    const double pad = (hi - lo) * fraction;
    return {lo - pad, hi + pad};
  }
  const double pad = lo != 0.0 ? std::fabs(lo) * 0.1 : 1.0;
  return {lo - pad, hi + pad};
}

}  // namespace

std::string format_chart_number(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.4g", value);
  return buffer;
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!(hi > lo) || target < 1) return {lo};
  const double raw_step = (hi - lo) / target;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw_step)));
  // The multiple nearest raw_step on a log scale (cut points ≈ geometric means 1.4, 3.2, 7.1).
  const double ratio = raw_step / magnitude;
  const double multiple = ratio < 1.5 ? 1.0 : ratio < 3.0 ? 2.0 : ratio < 7.0 ? 5.0 : 10.0;
  const double step = multiple * magnitude;
  std::vector<double> ticks;
  // Ticks are k·step for integer k, computed from k (not accumulated) to avoid drift.
  for (double k = std::ceil(lo / step); k * step <= hi + step * 1e-9; k += 1.0) {
    ticks.push_back(k * step);
  }
  return ticks;
}

std::string render_line_chart_svg(const LineChart& chart) {
  const double width = chart.width, height = chart.height;
  const double plot_width = width - kLeft - kRight, plot_height = height - kTop - kBottom;

  double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
  for (const ChartSeries& series : chart.series) {
    for (const auto& [x, y] : series.points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      x_lo = std::min(x_lo, x), x_hi = std::max(x_hi, x);
      y_lo = std::min(y_lo, y), y_hi = std::max(y_hi, y);
    }
  }

  std::string svg = "<svg class=\"chart\" width=\"" + std::to_string(chart.width) + "\" height=\"" +
                    std::to_string(chart.height) + "\" viewBox=\"0 0 " +
                    std::to_string(chart.width) + " " + std::to_string(chart.height) +
                    "\" role=\"img\">\n";
  svg += "<text class=\"chart-title\" x=\"8\" y=\"15\">" + html_escape(chart.title) + "</text>\n";
  if (!chart.caption.empty()) {
    svg += "<text class=\"chart-caption\" x=\"8\" y=\"30\">" + html_escape(chart.caption) +
           "</text>\n";
  }
  svg += "<rect class=\"plot\" x=\"" + fixed2(kLeft) + "\" y=\"" + fixed2(kTop) + "\" width=\"" +
         fixed2(plot_width) + "\" height=\"" + fixed2(plot_height) + "\"/>\n";
  if (!(x_lo <= x_hi)) {
    svg += "<text class=\"empty\" x=\"" + fixed2(kLeft + plot_width / 2) + "\" y=\"" +
           fixed2(kTop + plot_height / 2) + "\" text-anchor=\"middle\">no finite values</text>\n";
    return svg + "</svg>\n";
  }
  std::tie(x_lo, x_hi) = padded_range(x_lo, x_hi, 0.0);
  std::tie(y_lo, y_hi) = padded_range(y_lo, y_hi, 0.05);
  const auto px = [&](double x) { return kLeft + (x - x_lo) / (x_hi - x_lo) * plot_width; };
  const auto py = [&](double y) { return kTop + (y_hi - y) / (y_hi - y_lo) * plot_height; };

  // Grid lines and tick labels.
  const std::vector<double> x_ticks = nice_ticks(x_lo, x_hi, std::max(2, chart.width / 90));
  const std::vector<double> y_ticks = nice_ticks(y_lo, y_hi, std::max(2, chart.height / 50));
  const double x_step = x_ticks.size() > 1 ? x_ticks[1] - x_ticks[0] : 1.0;
  const double y_step = y_ticks.size() > 1 ? y_ticks[1] - y_ticks[0] : 1.0;
  for (const double x : x_ticks) {
    svg += "<line class=\"grid\" x1=\"" + fixed2(px(x)) + "\" y1=\"" + fixed2(kTop) + "\" x2=\"" +
           fixed2(px(x)) + "\" y2=\"" + fixed2(kTop + plot_height) + "\"/>";
    svg += "<text class=\"tick\" x=\"" + fixed2(px(x)) + "\" y=\"" +
           fixed2(kTop + plot_height + 14) + "\" text-anchor=\"middle\">" + tick_label(x, x_step) +
           "</text>\n";
  }
  for (const double y : y_ticks) {
    svg += "<line class=\"grid\" x1=\"" + fixed2(kLeft) + "\" y1=\"" + fixed2(py(y)) + "\" x2=\"" +
           fixed2(kLeft + plot_width) + "\" y2=\"" + fixed2(py(y)) + "\"/>";
    svg += "<text class=\"tick\" x=\"" + fixed2(kLeft - 5) + "\" y=\"" + fixed2(py(y) + 4) +
           "\" text-anchor=\"end\">" + tick_label(y, y_step) + "</text>\n";
  }
  svg += "<text class=\"axis-label\" x=\"" + fixed2(kLeft + plot_width / 2) + "\" y=\"" +
         fixed2(height - 6) + "\" text-anchor=\"middle\">" + html_escape(chart.x_label) +
         "</text>\n";
  svg += "<text class=\"axis-label\" transform=\"translate(12 " + fixed2(kTop + plot_height / 2) +
         ") rotate(-90)\" text-anchor=\"middle\">" + html_escape(chart.y_label) + "</text>\n";

  // The data: one polyline per series, then the markers on top.
  for (const ChartSeries& series : chart.series) {
    std::string points;
    for (const auto& [x, y] : series.points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      points += fixed2(px(x)) + "," + fixed2(py(y)) + " ";
    }
    if (points.empty()) continue;
    svg += "<polyline class=\"series\" stroke=\"" + html_escape(series.color) + "\" points=\"" +
           points + "\"/>\n";
    if (!chart.markers) continue;
    for (const auto& [x, y] : series.points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      svg += "<circle class=\"marker\" fill=\"" + html_escape(series.color) + "\" cx=\"" +
             fixed2(px(x)) + "\" cy=\"" + fixed2(py(y)) + "\" r=\"2.5\"><title>" +
             format_chart_number(x) + ": " + format_chart_number(y) + "</title></circle>";
    }
    svg += "\n";
  }
  return svg + "</svg>\n";
}

}  // namespace smol
