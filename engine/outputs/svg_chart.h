// Inline SVG line charts for report.html (docs/design.md §7): axes with "nice" ticks
// (1, 2 or 5 × 10^k apart), tick labels, axis labels, one polyline per series. Written as a
// plain string builder so the report needs no plotting library, script or network.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace smol {

struct ChartSeries {
  std::vector<std::pair<double, double>> points;  // (x, y); non-finite points are skipped
  std::string color = "#1f6fb4";                  // any CSS colour
};

struct LineChart {
  std::string title;    // drawn above the plot (escaped)
  std::string x_label;  // below the x axis (escaped)
  std::string y_label;  // beside the y axis (escaped)
  std::string caption;  // a second line under the title, e.g. the last value (escaped)
  int width = 460;
  int height = 260;
  bool markers = false;  // a dot per point, with a hover tooltip "x: y"
  std::vector<ChartSeries> series;
};

// The <svg> element. With no finite point at all it still draws the frame and says so.
std::string render_line_chart_svg(const LineChart& chart);

// Tick positions inside [lo, hi]: multiples of a step of 1, 2 or 5 × 10^k chosen so that
// about `target` ticks fit. lo <= hi; lo == hi gives {lo}.
std::vector<double> nice_ticks(double lo, double hi, int target);

// A short label for a value: printf "%.4g" (2e-4 → "0.0002", 1234567 → "1.235e+06").
std::string format_chart_number(double value);

}  // namespace smol
