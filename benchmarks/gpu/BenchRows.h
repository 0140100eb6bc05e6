//===- BenchRows.h - The decode-attention benchmark's rows ----------------===//
//
// A row of kvc_attention_bench (one variant at one S): what it measured,
// its summary (percentiles of the timed calls, bandwidth), and its two
// outputs, a line of the markdown table and an entry of the JSON file
// (which benchmarks/gpu/bench_report.py reads).
//
//===----------------------------------------------------------------------===//

#ifndef KVC_BENCHMARKS_GPU_BENCHROWS_H
#define KVC_BENCHMARKS_GPU_BENCHROWS_H

#include "BenchAppend.h"
#include "BenchTiming.h"
#include "CheckSupport.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace kvc::gpucheck {

/// One variant at one S: its measurements, or why it failed or did not run.
struct Row {
  std::string label, name, problem;
  uint32_t batch = 0, S = 0;
  std::vector<double> gpu, enqueue, call; ///< microseconds per timed call
  AppendTimes append;                     ///< per decode step; NaN: not timed
  uint64_t bytes = 0, kvBytes = 0;
  double storageBits = 0, readBits = 0;
  bool ran = false;
  /// The variant whose output for the same cache and queries this row's
  /// was compared with (empty: none), and max |out - ref| / max |ref|.
  std::string reference;
  double referenceDiff = std::nan("");
};

/// The command line's timing options.
struct Options {
  uint32_t reps = 50, warmup = 10;
  double peakTBps = 3.35, budget = 0;
};

/// A row's percentiles (microseconds) and bandwidth.
struct Summary {
  double gpuMedian, gpuP10, gpuP90, gpuMin, enqueueMedian, callMedian, tbps,
      percent;
};

inline Summary summarize(const Row &row, const Options &options) {
  Summary s;
  s.gpuMedian = percentile(row.gpu, 0.5);
  s.gpuP10 = percentile(row.gpu, 0.1);
  s.gpuP90 = percentile(row.gpu, 0.9);
  s.gpuMin = percentile(row.gpu, 0.0);
  s.enqueueMedian = percentile(row.enqueue, 0.5);
  s.callMedian = percentile(row.call, 0.5);
  s.tbps = double(row.bytes) / (s.gpuMedian * 1e-6) / 1e12;
  s.percent = 100.0 * s.tbps / options.peakTBps;
  return s;
}

/// Writes every row so far (after each row: a killed run keeps them).
inline bool writeJson(const std::string &path, const std::string &header,
                      const std::vector<Row> &rows, const Options &options) {
  std::ofstream file(path);
  file << "{\n" << header << "  \"rows\": [";
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row &r = rows[i];
    const Summary s = summarize(r, options);
    file << (i ? ",\n" : "\n") << "    {\"encoding\": " << jsonString(r.label)
         << ", \"name\": " << jsonString(r.name) << ", \"batch\": " << r.batch
         << ", \"S\": " << r.S
         << ", \"ok\": " << (r.ran && r.problem.empty() ? "true" : "false")
         << ", \"ran\": " << (r.ran ? "true" : "false")
         << ", \"problem\": " << jsonString(r.problem)
         << ", \"gpu_us_median\": " << jsonNumber(s.gpuMedian)
         << ", \"gpu_us_p10\": " << jsonNumber(s.gpuP10)
         << ", \"gpu_us_p90\": " << jsonNumber(s.gpuP90)
         << ", \"gpu_us_min\": " << jsonNumber(s.gpuMin)
         << ", \"enqueue_us_median\": " << jsonNumber(s.enqueueMedian)
         << ", \"call_us_median\": " << jsonNumber(s.callMedian)
         << ", \"append_gpu_us_per_step\": " << jsonNumber(r.append.gpuUs)
         << ", \"append_enqueue_us_per_step\": "
         << jsonNumber(r.append.enqueueUs) << ", \"bytes\": " << r.bytes
         << ", \"kv_bytes\": " << r.kvBytes
         << ", \"tbps\": " << jsonNumber(s.tbps)
         << ", \"percent_of_peak\": " << jsonNumber(s.percent)
         << ", \"storage_bits_per_element\": " << jsonNumber(r.storageBits)
         << ", \"read_bits_per_element\": " << jsonNumber(r.readBits)
         << ", \"timed_calls\": " << r.gpu.size()
         << ", \"reference\": " << jsonString(r.reference)
         << ", \"reference_rel_diff\": " << jsonNumber(r.referenceDiff) << "}";
  }
  file << "\n  ]\n}\n";
  return bool(file);
}

/// The markdown table of the rows, on stdout as they finish.
inline void printTableHeader() {
  std::printf("| encoding | B | S | GPU us (p10-p90) | enqueue us | call us | "
              "append GPU us | append enqueue us | MB read | TB/s | %% peak "
              "| bits/elem | result |\n");
  std::printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- "
              "| --- | --- | --- |\n");
}

inline void printTableRow(const Row &row, const Options &options) {
  const Summary s = summarize(row, options);
  const bool ok = row.ran && row.problem.empty();
  std::printf("| %s | %u | %u | %.1f (%.1f-%.1f) | %.1f | %.1f | %.1f | "
              "%.1f | %.2f | %.3f | %.1f | %.2f | %s%s%s |\n",
              row.label.c_str(), row.batch, row.S, s.gpuMedian, s.gpuP10,
              s.gpuP90, s.enqueueMedian, s.callMedian, row.append.gpuUs,
              row.append.enqueueUs, row.bytes / 1e6, s.tbps, s.percent,
              row.storageBits, ok ? "ok" : (row.ran ? "FAIL" : "skipped"),
              row.problem.empty() ? "" : ": ", row.problem.c_str());
}

} // namespace kvc::gpucheck

#endif // KVC_BENCHMARKS_GPU_BENCHROWS_H
