// report.html: escaping, a chart per metric, self-containment, non-finite values, spectra,
// the empty page, and the atomic write.
#include <gtest/gtest.h>

#include <cmath>
#include <regex>

#include "engine/outputs/metrics_log.h"
#include "engine/outputs/report_html.h"
#include "engine/outputs/svg_chart.h"
#include "outputs_test_util.h"

namespace smol {
namespace {

size_t count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

std::vector<nlohmann::json> sample_events() {
  std::vector<nlohmann::json> events;
  for (int step = 1; step <= 20; ++step) {
    events.push_back({{"kind", "train"},
                      {"step", step},
                      {"epoch", step / 20.0},
                      {"elapsed_seconds", step * 2.0},
                      {"loss", 2.0 / step},
                      {"learning_rate", 1e-4},
                      {"grad_norm", 0.5},
                      {"tokens_per_second", 40000.0}});
    if (step % 5 == 0) {
      events.push_back({{"kind", "eval"},
                        {"step", step},
                        {"epoch", step / 20.0},
                        {"elapsed_seconds", step * 2.0 + 1},
                        {"eval_loss", 1.0 / step},
                        {"eval_token_accuracy", 0.5 + step / 100.0}});
    }
  }
  return events;
}

ReportInput sample_input() {
  ReportInput input;
  input.title = "gsm8k_main_lora_seed42";
  input.subtitle = "device cuda (H200), started 2025-01-01 12:00 UTC";
  input.config_yaml = "model:\n  name: smol\ntraining:\n  lr: 2e-4  # a < b & c\n";
  input.events = sample_events();
  input.predictions = {
      {{"question", "2 + 2?"}, {"prediction", "<script>alert(1)</script> & 4"}, {"answer", "4"}},
      {{"question", "Tom's \"apples\""}, {"prediction", "5"}, {"correct", false}},
  };
  return input;
}

TEST(ReportHtml, EscapesPredictionsAndConfig) {
  const std::string html = render_report_html(sample_input());
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt; &amp; 4"), std::string::npos);
  EXPECT_NE(html.find("Tom&#39;s &quot;apples&quot;"), std::string::npos);
  EXPECT_NE(html.find("lr: 2e-4  # a &lt; b &amp; c"), std::string::npos);
  // Every field of every prediction is a column, non-string values shown as JSON.
  for (const char* column :
       {"<th>question</th>", "<th>prediction</th>", "<th>answer</th>", "<th>correct</th>"}) {
    EXPECT_NE(html.find(column), std::string::npos) << column;
  }
  EXPECT_NE(html.find("<td>false</td>"), std::string::npos);
  EXPECT_EQ(html_escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
}

TEST(ReportHtml, OneChartPerMetricAndNoExternalReference) {
  const std::string html = render_report_html(sample_input());
  // loss, learning_rate, grad_norm, tokens_per_second, eval_loss, eval_token_accuracy.
  EXPECT_EQ(count(html, "<svg class=\"chart\""), 6u);
  for (const char* metric : {"loss", "learning_rate", "grad_norm", "tokens_per_second", "eval_loss",
                             "eval_token_accuracy"}) {
    EXPECT_NE(html.find(std::string("<text class=\"chart-title\" x=\"8\" y=\"15\">") + metric +
                        "</text>"),
              std::string::npos)
        << metric;
  }
  // Leading curves come first, in the HF order, then eval_*.
  EXPECT_LT(html.find(">loss</text>"), html.find(">learning_rate</text>"));
  EXPECT_LT(html.find(">tokens_per_second</text>"), html.find(">eval_loss</text>"));
  // The last value is printed: loss at step 20 is 2/20.
  EXPECT_NE(html.find("last 0.1 at step 20"), std::string::npos);
  // Self-contained: no URL, no script, no external resource.
  EXPECT_EQ(html.find("http"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("src="), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  // Header: title, subtitle, last step, elapsed (41 s), final metrics.
  EXPECT_NE(html.find("<h1>gsm8k_main_lora_seed42</h1>"), std::string::npos);
  EXPECT_NE(html.find("device cuda (H200)"), std::string::npos);
  EXPECT_NE(html.find("<tr><th>last step</th><td>20</td></tr>"), std::string::npos);
  EXPECT_NE(html.find("<tr><th>elapsed</th><td>0:00:41</td></tr>"), std::string::npos);
  EXPECT_NE(html.find("<tr><td>eval_token_accuracy</td><td>0.7</td><td>20</td></tr>"),
            std::string::npos);
}

TEST(ReportHtml, NonFiniteValuesAreSkippedNotDrawn) {
  ReportInput input = sample_input();
  input.events.push_back({{"kind", "train"}, {"step", 21}, {"loss", nullptr}});  // as written
  input.events.push_back({{"kind", "train"}, {"step", 22}, {"loss", NAN}});      // in memory
  input.events.push_back({{"kind", "train"}, {"step", 23}, {"loss", INFINITY}});
  input.events.push_back({{"kind", "train"}, {"step", 24}, {"grad_norm", -INFINITY}});
  input.events.push_back({{"kind", "train"}, {"step", 25}, {"all_bad", NAN}});
  const std::string html = render_report_html(input);
  EXPECT_NE(html.find("3 non-finite value(s) skipped"), std::string::npos);
  EXPECT_NE(html.find("no finite values"), std::string::npos);  // the all_bad chart
  EXPECT_EQ(html.find("nan"), std::string::npos);
  EXPECT_EQ(html.find("inf"), std::string::npos);
  // Every coordinate in the SVG is a plain decimal number.
  const std::regex bad_number(R"((x|y|cx|cy|x1|x2|y1|y2)="[^"0-9-])");
  EXPECT_FALSE(std::regex_search(html, bad_number));
}

TEST(ReportHtml, EmptyEventListGivesAValidPageSayingNoEventsYet) {
  ReportInput input;
  input.title = "run";
  const std::string html = render_report_html(input);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("no events yet"), std::string::npos);
  EXPECT_NE(html.find("</body>\n</html>\n"), std::string::npos);
  EXPECT_EQ(count(html, "<svg"), 0u);
  EXPECT_NE(html.find("no predictions given"), std::string::npos);
  EXPECT_NE(html.find("no config given"), std::string::npos);
}

TEST(ReportHtml, RefactorSpectraBecomeSmallMultiples) {
  ReportInput input = sample_input();
  input.events.push_back({{"kind", "refactor"},
                          {"step", 10},
                          {"lambda", 0.8},
                          {"extra", {{"spectra_after", {{3.0, 2.0, 1.0}, {5.0, 0.5, nullptr}}}}}});
  input.events.push_back(
      {{"kind", "refactor"}, {"step", 20}, {"extra", {{"spectra_after", {{1.0}, {2.0}}}}}});
  input.events.push_back(
      {{"kind", "refactor"}, {"step", 30}, {"extra", {{"spectra_after", "not numbers"}}}});
  const std::string html = render_report_html(input);
  EXPECT_NE(html.find("<h2>Refactor spectra</h2>"), std::string::npos);
  EXPECT_NE(html.find(">step 10</text>"), std::string::npos);
  EXPECT_NE(html.find(">step 20</text>"), std::string::npos);
  EXPECT_NE(html.find("step 30: extra.spectra_after is not an array of arrays of numbers"),
            std::string::npos);
  // 6 metric charts + lambda (a scalar of refactor events) + 2 spectrum charts.
  EXPECT_EQ(count(html, "<svg class=\"chart\""), 9u);
  // Step 10 draws one polyline per layer.
  const size_t chart10 = html.find(">step 10</text>");
  const std::string svg10 = html.substr(chart10, html.find("</svg>", chart10) - chart10);
  EXPECT_EQ(count(svg10, "<polyline"), 2u);
  // No refactor events, no section.
  EXPECT_EQ(render_report_html(sample_input()).find("Refactor spectra"), std::string::npos);
}

TEST(ReportHtml, WriteIsAtomicAndReadsBackFromAMetricsLog) {
  test::ScratchDir dir;
  const std::string metrics = dir.file("metrics.jsonl");
  {
    MetricsLog log(metrics, false);
    LogEvent event;
    event.kind = "train";
    event.step = 5;
    event.scalars = {{"loss", 1.5}};
    log.write(event);
  }
  ReportInput input = sample_input();
  input.events = MetricsLog::read(metrics);
  const std::string path = dir.file("report.html");
  write_report_html(path, input);
  EXPECT_EQ(test::read_bytes(path), render_report_html(input));
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    EXPECT_EQ(entry.path().string().find(".tmp."), std::string::npos) << entry.path();
  }
}

TEST(SvgChart, NiceTicksAreRoundMultiples) {
  EXPECT_EQ(nice_ticks(0, 10, 5), (std::vector<double>{0, 2, 4, 6, 8, 10}));
  EXPECT_EQ(nice_ticks(1, 2802, 5), (std::vector<double>{500, 1000, 1500, 2000, 2500}));
  const std::vector<double> small = nice_ticks(-0.013, 0.021, 4);
  ASSERT_EQ(small.size(), 4u);  // step 0.01: -0.01, 0, 0.01, 0.02
  EXPECT_NEAR(small[0], -0.01, 1e-15);
  EXPECT_NEAR(small[3], 0.02, 1e-15);
  EXPECT_EQ(nice_ticks(3, 3, 5), std::vector<double>{3});
}

}  // namespace
}  // namespace smol
