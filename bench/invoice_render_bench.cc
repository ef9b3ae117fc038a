// Render time of invoice PDFs: a one-page invoice and a 60-line one that
// spans several pages. The PDF size is reported as a counter.

#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "postline/invoice.h"

namespace {

using postline::invoice::FormatHint;
using postline::invoice::Invoice;
using postline::invoice::InvoiceRenderSettings;

Invoice MakeInvoice(int lines) {
  std::string items;
  for (int i = 1; i <= lines; ++i) {
    if (i > 1) items += ",";
    items += fmt::format(
        R"({{"description": "Tuition and materials, item {} — Grundschule Große Straße", )"
        R"("quantity": "{}", "unit_price": "{}.50", "tax_category": "S", "tax_rate": "19"}})",
        i, i % 5 + 1, 10 + i);
  }
  std::string json = fmt::format(R"({{
    "number": "BENCH-{}", "issue_date": "2026-03-01", "due_date": "2026-03-15",
    "currency": "EUR",
    "seller": {{"name": "Förderverein Grundschule e. V.", "country": "DE",
                "address_lines": ["Große Straße 12"], "city": "Düsseldorf", "postcode": "40213"}},
    "buyer": {{"name": "Zoë Müller", "email": "zoe@example.com"}},
    "student": "Jürgen Weiß", "class": "3b", "term": "Frühjahr 2026",
    "payment": {{"iban": "DE89 3704 0044 0532 0130 00", "reference": "BENCH"}},
    "lines": [{}]}})",
                                 lines, items);
  auto invoice = postline::invoice::ParseInvoice(json, FormatHint::kJson, "bench.json");
  if (!invoice) {
    fmt::print(stderr, "{}\n", invoice.error().ToString());
    std::abort();
  }
  return *invoice;
}

void RenderBench(benchmark::State& state) {
  const Invoice invoice = MakeInvoice(static_cast<int>(state.range(0)));
  InvoiceRenderSettings settings;
  settings.frontend_url = "https://school.example.com";
  size_t bytes = 0;
  for (auto _ : state) {
    auto pdf = postline::invoice::RenderInvoicePdf(invoice, settings);
    if (!pdf) {
      state.SkipWithError(pdf.error().ToString().c_str());
      break;
    }
    bytes = pdf->size();
    benchmark::DoNotOptimize(pdf->data());
  }
  state.counters["pdf_bytes"] = static_cast<double>(bytes);
  state.SetLabel(fmt::format("{} lines", state.range(0)));
}
// 30 repetitions of a timed batch each; reported as mean, median, p95 and
// standard deviation of the per-render time.
double P95(const std::vector<double>& v) {
  std::vector<double> sorted(v);
  std::sort(sorted.begin(), sorted.end());
  return sorted[static_cast<std::size_t>(0.95 * static_cast<double>(sorted.size() - 1))];
}
BENCHMARK(RenderBench)
    ->Arg(3)
    ->Arg(60)
    ->Unit(benchmark::kMillisecond)
    ->Repetitions(30)
    ->ComputeStatistics("p95", P95)
    ->ReportAggregatesOnly(true);

}  // namespace

BENCHMARK_MAIN();
